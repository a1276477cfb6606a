/**
 * dockerd stopped mid-rollout and started again. The engine runs with --live-restore (scripts/start-engine.sh), as on a
 * production host, so the containers keep running while it is away; the tool retries its engine calls with backoff.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, inspectProject, inspectSettled, OPTIMIZED, root, startCli, tempStateDir, useFleet } from './helpers.js';

const PIDFILE = '/var/run/docker.pid';

async function engineAnswers(): Promise<boolean> {
  return (await execa('docker', ['info', '--format', '{{.ServerVersion}}'], { reject: false })).exitCode === 0;
}

/** Stops dockerd (SIGTERM, as `systemctl stop docker` does) and waits until it is gone. */
async function stopEngine(): Promise<void> {
  const pid = Number(readFileSync(PIDFILE, 'utf8').trim());
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 600; i += 1) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`dockerd (pid ${pid}) did not stop within 60 s`);
}

async function startEngine(): Promise<void> {
  await execa('bash', [path.join(root, 'scripts', 'start-engine.sh')], { stdin: 'ignore' });
}

function override(name: string, revision: string, services: readonly string[]): string {
  const file = path.join(tempStateDir(), `${name}.yml`);
  writeFileSync(file, `services:\n${services.map((s) => `  ${s}:\n    environment:\n      - ARENA_REVISION=${revision}\n`).join('')}`);
  return file;
}

function revisions(fleet: Awaited<ReturnType<typeof inspectProject>>): Record<string, string | undefined> {
  return Object.fromEntries([...fleet].filter(([s]) => s.startsWith('web-')).map(([s, c]) => [s, c.Config.Env.find((e) => e.startsWith('ARENA_REVISION='))?.split('=')[1]]));
}

describe('the Docker engine restarted mid-rollout', () => {
  beforeAll(async () => {
    const info = await execa('docker', ['info', '--format', '{{.LiveRestoreEnabled}}'], { reject: false });
    if (info.stdout.trim() !== 'true') throw new Error('This test restarts dockerd and needs it to run with --live-restore, as scripts/start-engine.sh starts it: restart the engine with that script.');
    if (!existsSync(PIDFILE) || process.getuid?.() !== 0) throw new Error(`This test stops and starts dockerd: it needs root and ${PIDFILE}.`);
  });
  const { project, env, state } = useFleet(OPTIMIZED, 62);
  // Whatever happens, the engine is up again for the tests after these.
  afterAll(async () => {
    if (!(await engineAnswers())) await startEngine();
  }, 120_000);

  it('a few seconds without an engine: the calls are retried with backoff and the rollout finishes', async () => {
    const plan = override('v2', 'v2', ['web-1', 'web-2', 'web-3']);
    const run = startCli(['rollout', '-f', OPTIMIZED, '-f', plan, '--project', project, '--state-dir', state, '--monitor', '1s'], env);
    await run.waitFor(/web-2: env ARENA_REVISION[^\n]*\n(?:.*\n)*?.*waiting for healthy/);
    await stopEngine();
    await new Promise((r) => setTimeout(r, 6000));
    await startEngine();
    const r = await run.done;
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/warning: the Docker engine at unix:\/\/\/var\/run\/docker\.sock stopped answering \(.*\); retrying for up to 1m00s\./);
    expect(r.stderr).toMatch(/The Docker engine at unix:\/\/\/var\/run\/docker\.sock answers again \(after \d+\.\ds\); carrying on\./);
    expect(r.stdout.trim().split('\n').pop()).toBe(`Rolled out ${project}: web-1…web-3 on the new config.`);
    const fleet = await inspectSettled(project);
    for (const [s, c] of fleet) expect(c.State.Health?.Status, s).toBe('healthy');
    expect(revisions(fleet)).toEqual({ 'web-1': 'v2', 'web-2': 'v2', 'web-3': 'v2', 'web-4': 'optimized', 'web-5': 'optimized', 'web-6': 'optimized' });
  }, 600_000);

  it('an engine away longer than --engine-timeout: a safe stop (exit 4) that says what runs where, then --resume finishes it', async () => {
    const plan = override('v3', 'v3', ['web-1', 'web-2', 'web-3', 'web-4', 'web-5', 'web-6']);
    const run = startCli(['rollout', '-f', OPTIMIZED, '-f', plan, '--project', project, '--state-dir', state, '--monitor', '1s', '--engine-timeout', '5s'], env);
    await run.waitFor(/web-2: env ARENA_REVISION[^\n]*\n(?:.*\n)*?.*waiting for healthy/);
    await stopEngine();
    let r;
    try {
      r = await run.done;
    } finally {
      await startEngine();
    }
    expect(r.exitCode, r.stderr).toBe(4);
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('error: '));
    expect(errors).toEqual([
      expect.stringMatching(/^error: Stopped: web-2: The Docker engine at unix:\/\/\/var\/run\/docker\.sock stopped answering \(.*\) and did not come back within 5\.0s\. web-1 on the new config, web-2 in an unknown state, the rest on the old config; nothing was rolled back\. When the engine answers again, `arena-deploy rollout --resume` finishes the rollout and `arena-deploy rollback` restores the backup\.$/),
    ]);
    expect(existsSync(path.join(state, 'locks', `${project}.lock`))).toBe(false);
    const status = await cli(['status', '--project', project, '--state-dir', state], env);
    expect(status.stdout).toMatch(/^UNFINISHED: rollout .* never finished \(the engine stopped answering\); it had changed web-1, web-2\.$/m);

    const resumed = await cli(['rollout', '--resume', '--project', project, '--state-dir', state, '--monitor', '1s'], env);
    expect(resumed.exitCode, resumed.stderr).toBe(0);
    const fleet = await inspectSettled(project);
    for (const [s, c] of fleet) expect(c.State.Health?.Status, s).toBe('healthy');
    expect(Object.values(revisions(fleet))).toEqual(Array(6).fill('v3'));
    expect((await cli(['status', '--project', project, '--state-dir', state], env)).exitCode).toBe(0);
  }, 600_000);
});
