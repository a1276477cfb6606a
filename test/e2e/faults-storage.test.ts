/** Faults of the tool's own storage and of the rollback: a backup that cannot be written, a backup image that is gone. */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, composeDown, fleetEnv, inspectProject, inspectSettled, killRunningCli, OPTIMIZED, requireEngine, tempStateDir, uniqueProject } from './helpers.js';

const FIXTURE = 'arena-deploy/backend:fixture';

describe('the backup cannot be written, and the rollback itself fails', () => {
  const project = uniqueProject();
  const env = fleetEnv(60);
  // web-1 runs an image tag of its own, which the test removes to make the rollback fail.
  const tag = `arena-deploy/backend:test-${project.slice(-8)}`;
  const files = path.join(tempStateDir(), 'files');
  const current = path.join(files, 'web-1-own-tag.yml');
  const state = tempStateDir();

  beforeAll(async () => {
    await requireEngine();
    await execa('mkdir', ['-p', files]);
    writeFileSync(current, `services:\n  web-1:\n    image: ${tag}\n`);
    await execa('docker', ['tag', FIXTURE, tag]);
    await execa('docker', ['compose', '--project-name', project, '-f', OPTIMIZED, '-f', current, 'up', '--detach', '--wait', '--wait-timeout', '300'], { env, stdin: 'ignore' });
  }, 600_000);
  afterAll(async () => {
    killRunningCli();
    await composeDown(project);
    await execa('docker', ['rmi', tag], { reject: false });
  }, 120_000);

  it('a full state folder (a 48 KiB tmpfs) stops the rollout before any container is touched: exit 4', async () => {
    const mount = mkdtempSync(path.join(os.tmpdir(), 'arena-deploy-test-tmpfs-'));
    const mounted = await execa('mount', ['-t', 'tmpfs', '-o', 'size=48k,mode=0700', 'tmpfs', mount], { reject: false });
    if (mounted.exitCode !== 0) throw new Error(`This test mounts a tiny tmpfs and needs root: mount said ${mounted.stderr.trim()}`);
    try {
      const before = await inspectProject(project);
      const target = path.join(files, 'v2.yml');
      writeFileSync(target, 'services:\n  web-2:\n    environment:\n      - ARENA_REVISION=v2\n');
      const r = await cli(['rollout', '-f', OPTIMIZED, '-f', current, '-f', target, '--project', project, '--state-dir', mount], env);
      expect(r.exitCode, r.stderr).toBe(4);
      const errors = r.stderr.split('\n').filter((l) => l.startsWith('error: '));
      expect(errors).toEqual([expect.stringMatching(new RegExp(`^error: Cannot write the backup in ${mount}/backups/${project}/\\d{8}T\\d{9}Z: no space left on the device; the incomplete folder was removed\\. Nothing was changed\\.$`))]);
      expect(r.stderr).not.toMatch(/^\s+at /m);
      const after = await inspectProject(project);
      for (const [s, c] of after) expect(c.Id, s).toBe(before.get(s)!.Id);
      expect(readdirSync(path.join(mount, 'backups', project))).toEqual([]);
      expect(existsSync(path.join(mount, 'locks', `${project}.lock`))).toBe(false);
      const last = readFileSync(path.join(mount, 'journal.jsonl'), 'utf8').trim().split('\n').pop()!;
      expect(JSON.parse(last)).toMatchObject({ type: 'rollout-finished', outcome: 'not-started' });
    } finally {
      await execa('umount', [mount], { reject: false });
      rmSync(mount, { recursive: true, force: true });
    }
  }, 300_000);

  it('a rollback that fails (the old image removed meanwhile) exits 6 and says which service runs which config and what to do', async () => {
    const before = await inspectProject(project);
    // The tag goes; web-1 keeps running on the image itself, but compose cannot recreate it from the old config.
    await execa('docker', ['rmi', tag]);
    const target = path.join(files, 'broken.yml');
    writeFileSync(target, `services:\n  web-1:\n    image: ${FIXTURE}\n    environment:\n      - ARENA_UNHEALTHY=1\n`);
    const r = await cli(['rollout', '-f', OPTIMIZED, '-f', target, '--project', project, '--state-dir', state], env);
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(6);
    expect(r.stderr).toContain(`warning: the current config of web-1 names the image ${tag}, which the engine no longer has: if the rollout fails, the rollback cannot recreate that service.`);
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('error: '));
    expect(errors).toEqual([expect.stringMatching(new RegExp(`^error: Rollback failed after web-1: web-1 became unhealthy .*\\. web-1 on the NEW config; every other service on the old config\\. A person must act: web-1: .*${tag.replace(/[.:/-]/g, '.')}.*\\.$`))]);
    expect(r.stderr).toContain(`then \`arena-deploy rollback --project ${project}\` converges every service to the backup.`);
    expect(r.stdout).toMatch(/^web-1 .* rollback failed$/m);
    const after = await inspectProject(project);
    expect(after.get('web-1')!.Config.Env).toContain('ARENA_UNHEALTHY=1');
    for (const s of ['web-2', 'web-3', 'web-4', 'web-5', 'web-6', 'nginx', 'redis']) expect(after.get(s)!.Id, s).toBe(before.get(s)!.Id);

    // What the report says to do works: the image back, then rollback.
    await execa('docker', ['tag', FIXTURE, tag]);
    const back = await cli(['rollback', '--project', project, '--state-dir', state], env);
    expect(back.exitCode, back.stderr).toBe(0);
    const fixed = await inspectSettled(project);
    expect(fixed.get('web-1')!.Config.Env).not.toContain('ARENA_UNHEALTHY=1');
    for (const [s, c] of fixed) expect(c.State.Health?.Status, s).toBe('healthy');
  }, 600_000);
});
