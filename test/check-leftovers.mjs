#!/usr/bin/env node
/**
 * Run by `npm test` after the suite: nothing the tests created may be left — containers, networks and volumes of
 * arena-test-* projects, image tags arena-deploy/*:test-*, temporary folders arena-deploy-test-*, mounts on them.
 * Each test cleans up after itself; this is the check that it did. Exit 1 naming what was left.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';

const PREFIX = 'arena-test-';

function lines(args) {
  try {
    return execFileSync('docker', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n').map((l) => l.trim()).filter(Boolean);
  } catch {
    return [];
  }
}

const found = [];
for (const c of lines(['ps', '--all', '--format', '{{.Names}}', '--filter', 'label=com.docker.compose.project']).filter((n) => n.startsWith(PREFIX))) found.push(`container ${c}`);
for (const n of lines(['network', 'ls', '--format', '{{.Name}}']).filter((x) => x.startsWith(PREFIX))) found.push(`network ${n}`);
for (const v of lines(['volume', 'ls', '--format', '{{.Name}}']).filter((x) => x.startsWith(PREFIX))) found.push(`volume ${v}`);
for (const i of lines(['image', 'ls', '--format', '{{.Repository}}:{{.Tag}}']).filter((x) => /^arena-deploy\/[^:]+:test-/.test(x))) found.push(`image ${i}`);
for (const d of readdirSync(os.tmpdir()).filter((n) => n.startsWith('arena-deploy-test-'))) found.push(`folder ${os.tmpdir()}/${d}`);
for (const m of readFileSync('/proc/self/mounts', 'utf8').split('\n').filter((l) => l.includes(`${os.tmpdir()}/arena-deploy-test-`))) found.push(`mount ${m.split(' ')[1]}`);

if (found.length) {
  console.error(`error: the tests left ${found.length} thing(s) behind: ${found.join(', ')}.`);
  process.exit(1);
}
console.log('check-leftovers: the tests left no container, network, volume, image tag, folder or mount behind.');
