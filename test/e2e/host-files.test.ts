/**
 * The bind-mounted-file check against the real engine. With a remote engine the engine's host and this machine differ;
 * here they are the same machine, so the local side is given as a different buffer (the copy the plan expects) while
 * the engine really reads the file on its host through a throwaway container.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { DockerEngineClient } from '../../src/engine/docker-engine-client.js';
import { resolveEngineTarget } from '../../src/engine/target.js';
import { readHostFiles, verifyHostFiles } from '../../src/rollout/host-files.js';
import { requireEngine, tempStateDir } from './helpers.js';

const IMAGE = 'arena-deploy/nginx:fixture';
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const engine = new DockerEngineClient(() => resolveEngineTarget({ env: { DOCKER_HOST: 'unix:///var/run/docker.sock' } }));
const helpers = async () => (await execa('docker', ['ps', '-aq', '--filter', 'label=org.arena-deploy.helper'])).stdout;

describe('bind-mounted files on the engine host', () => {
  const dir = tempStateDir();
  const conf = path.join(dir, 'nginx', 'default.conf');
  const bytes = Buffer.from([0, 1, 2, 255, 10, 13, 0x1b, ...Buffer.from('upstream web { server web-1:8000; }\n')]);
  beforeAll(async () => {
    await requireEngine();
    mkdirSync(path.dirname(conf));
    writeFileSync(conf, bytes);
  });

  it('reads the exact bytes on the engine host, and removes its reader container', async () => {
    const r = await engine.readHostFile(IMAGE, conf);
    expect(r.found && Buffer.compare(r.data, bytes)).toBe(0);
    expect(await helpers()).toBe('');
  }, 60_000);

  it('the same file on both sides: nothing to report', async () => {
    expect(await verifyHostFiles(engine, [{ source: conf, services: ['nginx'], images: [IMAGE] }])).toEqual([]);
  }, 60_000);

  it('a different local copy: one sentence naming the file and both sums', async () => {
    const local = Buffer.from('upstream web { server web-1:8000; server web-2:8000; }\n');
    const problems = await verifyHostFiles(engine, [{ source: conf, services: ['nginx'], images: [IMAGE] }], async () => local);
    expect(problems).toEqual([
      { source: conf, message: `The file ${conf} that nginx bind-mounts differs on the engine's host (sha256 there ${sha(bytes)}, here ${sha(local)}): copy this version there first. Nothing was changed.` },
    ]);
    expect(await helpers()).toBe('');
  }, 60_000);

  it('absent on the engine host: said so, and no folder is created there', async () => {
    const gone = path.join(dir, 'not-there.conf');
    const local = Buffer.from('x');
    const problems = await verifyHostFiles(engine, [{ source: gone, services: ['nginx'], images: ['arena-deploy/nope:missing', IMAGE] }], async () => local);
    expect(problems).toEqual([
      { source: gone, message: `The file ${gone} that nginx bind-mounts is not usable on the engine's host: it does not exist on the engine's host (local sha256 ${sha(local)}); copy it there first. Nothing was changed.` },
    ]);
    const created = await execa('test', ['-e', gone], { reject: false });
    expect(created.exitCode).toBe(1);
    expect(await helpers()).toBe('');
  }, 60_000);

  it('a folder where a file is expected: cannot be read there', async () => {
    const problems = await verifyHostFiles(engine, [{ source: path.dirname(conf), services: ['nginx'], images: [IMAGE] }], async () => Buffer.from('x'));
    expect(problems[0]?.message).toContain(`The file ${path.dirname(conf)} that nginx bind-mounts is not usable on the engine's host: it is a folder there, not a file (local sha256 `);
  }, 60_000);

  it('reads the current versions for the backup, and says which could not be read', async () => {
    const gone = path.join(dir, 'gone.conf');
    const files = await readHostFiles(engine, [
      { source: conf, services: ['nginx'], images: [IMAGE] },
      { source: gone, services: ['nginx'], images: [IMAGE] },
    ]);
    expect(files).toEqual([
      { path: conf, data: bytes },
      { path: gone, reason: "it does not exist on the engine's host" },
    ]);
  }, 60_000);
});
