/**
 * The fault matrix on the real engine (docs/reliability.md): each fault ends with every service healthy on the old or the
 * new config, an exit code and a verdict saying which, the backups intact and no lock left behind.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { cli, inspectProject, inspectSettled, OPTIMIZED, startCli, tempStateDir, useFleet, type Inspected } from './helpers.js';

const WEB = ['web-1', 'web-2', 'web-3', 'web-4', 'web-5', 'web-6'];

/** An override file: `services:` with the given service bodies (YAML, indented two spaces). */
function override(name: string, services: Record<string, string>): string {
  const file = path.join(tempStateDir(), `${name}.yml`);
  writeFileSync(file, `services:\n${Object.entries(services).map(([s, body]) => `  ${s}:\n${body.replace(/^/gm, '    ')}\n`).join('')}`);
  return file;
}

/** Env lines for an override: `environment:` with ARENA_REVISION and the knobs. */
function env(revision: string, knobs: Record<string, string | number> = {}): string {
  return `environment:\n  - ARENA_REVISION=${revision}\n${Object.entries(knobs).map(([k, v]) => `  - ${k}=${v}\n`).join('')}`.trimEnd();
}

function revisionOf(c: Inspected | undefined): string | undefined {
  return c?.Config.Env.find((e) => e.startsWith('ARENA_REVISION='))?.slice('ARENA_REVISION='.length);
}

function idsOf(fleet: Map<string, Inspected>): Record<string, string> {
  return Object.fromEntries([...fleet].map(([s, c]) => [s, c.Id]));
}

/** Every container of the project running and healthy, on the given revision per web service. */
async function expectFleet(project: string, revision: (service: string) => string): Promise<Map<string, Inspected>> {
  const fleet = await inspectSettled(project);
  expect([...fleet.keys()].sort()).toEqual(['nginx', 'redis', ...WEB].sort());
  for (const [s, c] of fleet) {
    expect(c.State.Status, s).toBe('running');
    expect(c.State.Health?.Status, s).toBe('healthy');
    if (s.startsWith('web-')) expect(revisionOf(c), s).toBe(revision(s));
  }
  return fleet;
}

/** The "HEALTHY AFTER" column of a service in the summary table, in seconds. */
function healthyAfterS(stdout: string, service: string): number {
  const m = new RegExp(`^${service} .* (\\d+(?:\\.\\d+)?)s +updated$`, 'm').exec(stdout);
  if (!m) throw new Error(`no summary row for ${service} in:\n${stdout}`);
  return Number(m[1]);
}

function errorLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l.startsWith('error: '));
}

function journal(state: string): Array<Record<string, unknown>> {
  return readFileSync(path.join(state, 'journal.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
}

function backupsOf(state: string, project: string): string[] {
  const dir = path.join(state, 'backups', project);
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

/** The rollout flags every test uses: the project, its state folder, a short monitor window. */
function rollout(project: string, state: string, files: readonly string[], ...more: string[]): string[] {
  return ['rollout', ...files.flatMap((f) => ['-f', f]), '--project', project, '--state-dir', state, ...more];
}

describe('faults while a new container starts', () => {
  const { project, env: fleetEnv, state } = useFleet(OPTIMIZED, 57);

  it('a boot slower than the deadline is rolled back as a timeout: exit 5, web-1 on the old config, nothing else touched', async () => {
    const before = idsOf(await inspectProject(project));
    const slow = override('boot-60s', { 'web-1': env('slow', { ARENA_BOOT_DELAY: 60 }) });
    const r = await cli(rollout(project, state, [OPTIMIZED, slow], '--health-timeout', '15s'), fleetEnv);
    expect(r.exitCode, r.stderr).toBe(5);
    expect(errorLines(r.stderr)).toEqual([expect.stringMatching(/^error: Rolled back: web-1: web-1 was not healthy within its deadline of 15\.0s \(health still "starting"\)\. web-1 restored from the backup; every service of arena-test-\w+ is on the old config\.$/)]);
    const after = await expectFleet(project, () => 'optimized');
    for (const s of ['web-2', 'web-3', 'web-4', 'web-5', 'web-6', 'nginx', 'redis']) expect(after.get(s)!.Id, s).toBe(before[s]);
    expect(existsSync(path.join(state, 'locks', `${project}.lock`))).toBe(false);
  }, 300_000);

  it('a container OOM-killed inside its monitor window is rolled back, and the verdict says "out of memory", not "exit 137"', async () => {
    // 4 workers × 300 MiB under a 400 MiB limit: healthy first, then the kernel kills workers.
    const oom = override('oom', { 'web-1': `${env('oom', { ARENA_ALLOC_MB: 300, ARENA_ALLOC_DELAY: 3 })}\ndeploy:\n  resources:\n    limits:\n      memory: 400M` });
    // The analysis sees it coming (memory-overcommit, exit 3): --force makes the engine prove it.
    const r = await cli(rollout(project, state, [OPTIMIZED, oom], '--monitor', '30s', '--force'), fleetEnv);
    expect(r.exitCode, r.stderr).toBe(5);
    const [verdict] = errorLines(r.stderr);
    expect(verdict).toMatch(/^error: Rolled back: web-1: web-1 ran out of memory .*web-1 restored from the backup; every service of arena-test-\w+ is on the old config\.$/);
    // Not the exit code (the project's random name may hold the digits 137).
    expect(verdict).not.toMatch(/code 137|exit 137|SIGKILL/);
    await expectFleet(project, () => 'optimized');
  }, 300_000);

  it('a crash loop under restart: unless-stopped (crash 1 s after boot) is a failure and is rolled back', async () => {
    const crash = override('crash-1s', { 'web-1': env('crash', { ARENA_CRASH_AFTER: 1 }) });
    // "1 s after boot" is 1 s after the worker's boot hook, which a loaded machine delays: the monitor window covers it.
    // Which sign comes first (the exit, the restart count, the failing probes of a gunicorn halting) depends on timing.
    const r = await cli(rollout(project, state, [OPTIMIZED, crash], '--monitor', '30s'), fleetEnv);
    expect(r.exitCode, r.stderr).toBe(5);
    expect(errorLines(r.stderr)).toEqual([expect.stringMatching(/^error: Rolled back: web-1: web-1 (exited with code 3|restarted|became unhealthy|turned unhealthy).* web-1 restored from the backup; every service of arena-test-\w+ is on the old config\.$/)]);
    expect(r.stderr).toMatch(/exit(ed with)? code 3/);
    await expectFleet(project, () => 'optimized');
  }, 300_000);

  it('a boot slower than 20 s but within the deadline, and a 20 s health probe on a busy worker, both succeed', async () => {
    const backups = backupsOf(state, project).length;
    const busy = override('slow-but-fine', { 'web-1': env('v2', { ARENA_BOOT_DELAY: 25 }), 'web-2': env('v2', { ARENA_HEALTH_DELAY: 20 }) });
    const r = await cli(rollout(project, state, [OPTIMIZED, busy], '--monitor', '2s'), fleetEnv);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n').pop()).toBe(`Rolled out ${project}: web-1, web-2 on the new config.`);
    expect(healthyAfterS(r.stdout, 'web-1')).toBeGreaterThanOrEqual(25);
    expect(healthyAfterS(r.stdout, 'web-2')).toBeGreaterThanOrEqual(20);
    await expectFleet(project, (s) => (s === 'web-1' || s === 'web-2' ? 'v2' : 'optimized'));
    // One more backup; the earlier ones are still there.
    expect(backupsOf(state, project)).toHaveLength(backups + 1);
  }, 400_000);
});

describe('SIGINT and SIGTERM while waiting for health', () => {
  const { project, env: fleetEnv, state } = useFleet(OPTIMIZED, 58);

  it.each([
    ['SIGTERM', 143],
    ['SIGINT', 130],
  ] as const)('%s: the service in flight is rolled back, no other is started, exit %i', async (signal, code) => {
    const before = idsOf(await inspectProject(project));
    const slow = override(`boot-${signal}`, Object.fromEntries(WEB.map((s) => [s, env('v2', { ARENA_BOOT_DELAY: 40 })])));
    const run = startCli(rollout(project, state, [OPTIMIZED, slow]), fleetEnv);
    await run.waitFor(/waiting for healthy/);
    run.kill(signal);
    const r = await run.done;
    expect(r.exitCode, r.stderr).toBe(code);
    expect(r.stderr).toContain(`${signal}: stopping; the service in flight and every service already changed are rolled back before exit`);
    expect(errorLines(r.stderr)).toEqual([expect.stringMatching(/^error: Interrupted: web-1: Interrupted while waiting for web-1 to become healthy\. web-1 restored from the backup; every service of arena-test-\w+ is on the old config\.$/)]);
    const after = await expectFleet(project, () => 'optimized');
    for (const s of ['web-2', 'web-3', 'web-4', 'web-5', 'web-6', 'nginx', 'redis']) expect(after.get(s)!.Id, s).toBe(before[s]);
    expect(existsSync(path.join(state, 'locks', `${project}.lock`))).toBe(false);
    expect(journal(state).filter((l) => l['type'] === 'rollout-finished').pop()?.['outcome']).toBe('interrupted');
  }, 300_000);
});

describe('the tool killed mid-rollout, a second rollout meanwhile, and stale locks', () => {
  const { project, env: fleetEnv, state } = useFleet(OPTIMIZED, 59);
  const v2 = () => override('v2', Object.fromEntries(WEB.map((s) => [s, env('v2')])));

  it('refuses a second rollout while one runs, naming who holds the lock, since when and for which plan: exit 4', async () => {
    const plan = v2();
    const first = startCli(rollout(project, state, [OPTIMIZED, plan], '--monitor', '1s'), fleetEnv);
    await first.waitFor(/web-1: env ARENA_REVISION/);
    const second = await cli(rollout(project, state, [OPTIMIZED, plan]), fleetEnv);
    expect(second.exitCode, second.stderr).toBe(4);
    expect(errorLines(second.stderr)).toEqual([
      expect.stringMatching(new RegExp(`^error: Another rollout of ${project} is running: \\S+@\\S+ \\(pid ${first.pid}\\) since \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z, plan ${OPTIMIZED.replace(/[.]/g, '\\.')}, ${plan.replace(/[.]/g, '\\.')}, rollout \\S+\\. Wait for it to finish\\.$`)),
    ]);
    // Killed with SIGKILL once web-2 is on the new config: no finish record, the lock left behind.
    await first.waitFor(/web-2: updated/);
    first.kill('SIGKILL');
    await first.done;
    expect(existsSync(path.join(state, 'locks', `${project}.lock`))).toBe(true);

    const status = await cli(['status', '--project', project, '--state-dir', state], fleetEnv);
    expect(status.exitCode, status.stderr).toBe(1);
    expect(status.stdout).toMatch(new RegExp(`^UNFINISHED: rollout \\S+ by \\S+ at \\S+ to docker-compose\\.loadbalanced\\.optimized\\.yml, v2\\.yml never finished \\(its process is gone\\); it had changed web-1…web-3\\.$|^UNFINISHED: .* it had changed web-1, web-2\\.$`, 'm'));

    const plain = await cli(rollout(project, state, [OPTIMIZED, plan]), fleetEnv);
    expect(plain.exitCode, plain.stderr).toBe(4);
    expect(errorLines(plain.stderr)[0]).toMatch(/^error: An earlier rollout \S+ of arena-test-\w+ by .* never finished \(its process is gone\); it had changed web-1(, web-2|…web-\d)[^:]*: the fleet may be part old, part new\.$/);
    expect(plain.stderr).toContain('--resume');

    const resumed = await cli(['rollout', '--resume', '--project', project, '--state-dir', state, '--monitor', '1s'], fleetEnv);
    expect(resumed.exitCode, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(/Took over the lock .*: its process \(pid \d+\) is gone and it belonged to the rollout being continued\./);
    expect(resumed.stderr).toMatch(/Using the interrupted rollout's backup/);
    expect(resumed.stdout.trim().split('\n').pop()).toBe(`Rolled out ${project}: web-1…web-6 on the new config.`);
    await expectFleet(project, () => 'v2');
    expect(existsSync(path.join(state, 'locks', `${project}.lock`))).toBe(false);
    // One backup: the resume used the interrupted rollout's.
    expect(backupsOf(state, project)).toHaveLength(1);
    const h = JSON.parse((await cli(['history', '--project', project, '--state-dir', state, '--output', 'json'], fleetEnv)).stdout) as { rollouts: Array<{ id: string; result: string }> };
    expect(h.rollouts.map((x) => x.result)).toEqual([`killed, resumed by ${h.rollouts[1]!.id}`, 'succeeded']);
    expect((await cli(['status', '--project', project, '--state-dir', state], fleetEnv)).exitCode).toBe(0);
  }, 600_000);

  it('killed again, `arena-deploy rollback` brings the fleet back to that rollout\'s backup', async () => {
    const v3 = override('v3', Object.fromEntries(WEB.map((s) => [s, env('v3')])));
    const run = startCli(rollout(project, state, [OPTIMIZED, v3], '--monitor', '1s'), fleetEnv);
    await run.waitFor(/web-1: updated/);
    run.kill('SIGKILL');
    await run.done;
    const back = await cli(['rollback', '--project', project, '--state-dir', state], fleetEnv);
    expect(back.exitCode, back.stderr).toBe(0);
    expect(back.stderr).toMatch(/Took over the lock .*belonged to the rollout being continued/);
    await expectFleet(project, () => 'v2');
    expect(existsSync(path.join(state, 'locks', `${project}.lock`))).toBe(false);
    // Settled: status is clean, and a new rollout is not refused.
    expect((await cli(['status', '--project', project, '--state-dir', state], fleetEnv)).exitCode).toBe(0);
  }, 600_000);

  it('a stale lock (its process gone) is reported and refused; --break-lock takes it over', async () => {
    const dead = await execa('sh', ['-c', 'echo $$']);
    const lock = path.join(state, 'locks', `${project}.lock`);
    const holder = { pid: Number(dead.stdout), user: 'ops', host: (await execa('hostname')).stdout.trim(), since: '2026-12-01T08:00:00.000Z', plan: ['/srv/arena/plan.yml'] };
    writeFileSync(lock, `${JSON.stringify(holder)}\n`);
    const v4 = override('v4', { 'web-1': env('v4') });
    const refused = await cli(rollout(project, state, [OPTIMIZED, v4]), fleetEnv);
    expect(refused.exitCode, refused.stderr).toBe(4);
    expect(errorLines(refused.stderr)).toEqual([`error: A rollout of ${project} that is no longer running holds a stale lock: ops@${holder.host} (pid ${holder.pid}) since 2026-12-01T08:00:00.000Z, plan /srv/arena/plan.yml; its process is gone.`]);
    const taken = await cli(rollout(project, state, [OPTIMIZED, v4], '--break-lock', '--monitor', '1s'), fleetEnv);
    expect(taken.exitCode, taken.stderr).toBe(0);
    expect(taken.stderr).toContain(`Took over the lock ${lock} of ops@${holder.host} (since 2026-12-01T08:00:00.000Z): its process (pid ${holder.pid}) is gone; --break-lock.`);
    await expectFleet(project, (s) => (s === 'web-1' ? 'v4' : 'optimized'));
    expect(existsSync(lock)).toBe(false);
  }, 600_000);
});
