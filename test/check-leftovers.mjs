#!/usr/bin/env node
/**
 * Run by `npm test` before and after the suite. What the tests create is theirs by name: containers, networks and
 * volumes of arena-test-* projects, image tags arena-deploy/*:test-*, temporary folders arena-deploy-test-* and mounts
 * on them.
 *
 *   node test/check-leftovers.mjs          after the suite: each test cleans up after itself; this checks that it
 *                                          did, and exits 1 naming what was left.
 *   node test/check-leftovers.mjs --clear  before the suite: removes what an interrupted earlier run left (a killed
 *                                          run's containers come back with the engine under their restart policy
 *                                          and hold the ports the tests publish), saying what it removed.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const PREFIX = 'arena-test-';
const clear = process.argv.includes('--clear');

function lines(args) {
  try {
    return execFileSync('docker', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n').map((l) => l.trim()).filter(Boolean);
  } catch {
    return [];
  }
}

function run(command, args) {
  try {
    execFileSync(command, args, { stdio: ['ignore', 'ignore', 'ignore'] });
    return true;
  } catch {
    return false;
  }
}

const tmp = os.tmpdir();
const mounts = () => readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1]).filter((m) => m && m.startsWith(path.join(tmp, 'arena-deploy-test-')));
const kinds = [
  // Containers first: networks and volumes in use cannot go before them, and mounts before the folders under them.
  // By the project label, not the name: a recreate that was cut short leaves a container renamed <id>_<name>.
  ['container', () => lines(['ps', '--all', '--format', '{{.Label "com.docker.compose.project"}} {{.Names}}', '--filter', 'label=com.docker.compose.project']).filter((l) => l.startsWith(PREFIX)).map((l) => l.split(' ')[1]), (c) => run('docker', ['rm', '--force', '--volumes', c])],
  ['network', () => lines(['network', 'ls', '--format', '{{.Name}}']).filter((x) => x.startsWith(PREFIX)), (n) => run('docker', ['network', 'rm', n])],
  ['volume', () => lines(['volume', 'ls', '--format', '{{.Name}}']).filter((x) => x.startsWith(PREFIX)), (v) => run('docker', ['volume', 'rm', '--force', v])],
  ['image', () => lines(['image', 'ls', '--format', '{{.Repository}}:{{.Tag}}']).filter((x) => /^arena-deploy\/[^:]+:test-/.test(x)), (i) => run('docker', ['image', 'rm', i])],
  ['mount', mounts, (m) => run('umount', ['--lazy', m])],
  ['folder', () => readdirSync(tmp).filter((n) => n.startsWith('arena-deploy-test-')).map((n) => path.join(tmp, n)), (d) => { try { rmSync(d, { recursive: true, force: true }); return true; } catch { return false; } }],
];

const found = [];
const failed = [];
for (const [kind, list, remove] of kinds) {
  for (const name of list()) {
    found.push(`${kind} ${name}`);
    if (clear && !remove(name)) failed.push(`${kind} ${name}`);
  }
}

if (clear) {
  if (failed.length) {
    console.error(`error: could not remove what an earlier test run left: ${failed.join(', ')}; remove it by hand and run the tests again.`);
    process.exit(1);
  }
  if (found.length) console.log(`check-leftovers: removed what an interrupted earlier test run left: ${found.join(', ')}.`);
  process.exit(0);
}
if (found.length) {
  console.error(`error: the tests left ${found.length} thing(s) behind: ${found.join(', ')}.`);
  process.exit(1);
}
console.log('check-leftovers: the tests left no container, network, volume, image tag, folder or mount behind.');
