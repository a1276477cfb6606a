/** End to end on the real engine: the main job, a broken target, the dry run, and no engine at all. */
import { readFileSync, readdirSync, statSync, existsSync, writeFileSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, FIXTURE_SECRET, fleetEnv, get, inspectProject, inspectSettled, NEVER_HEALTHY, OPTIMIZED, ORIGINAL, tempStateDir, twins, uniqueProject, useFleet } from './helpers.js';

const MB = 1024 ** 2;
const WEB_NEW = ['web-1', 'web-2', 'web-3', 'web-4', 'web-5', 'web-6'];
const WEB_RETIRED = ['web-7', 'web-8', 'web-9', 'web-10'];

function ids(fleet: Map<string, { Id: string }>): Record<string, string> {
  return Object.fromEntries([...fleet].map(([s, c]) => [s, c.Id]));
}

function listTree(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...listTree(p));
    else out.push(p);
  }
  return out;
}

describe('rollout of the original twin to the optimized twin', () => {
  const { project, env, state } = useFleet(ORIGINAL, 51);

  it('--dry-run prints the steps and changes nothing: same container IDs, no backup, no lock', async () => {
    const before = ids(await inspectProject(project));
    const r = await cli(['rollout', OPTIMIZED, '--project', project, '--dry-run', '--state-dir', state], env);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain(`Rollout plan for compose project "${project}"`);
    expect(r.stdout).toMatch(/web-1 +recreate +workers: 12 → 4\n +threads: 6 → 4/);
    expect(r.stdout).toMatch(/web-10 +retire/);
    expect(r.stdout).toMatch(/redis +keep +no change/);
    expect(r.stdout).toMatch(/drain web-1 from nginx \(where a conf routes to it\) → recreate web-1 → wait healthy \(Docker.s status, or the health URL on its published port; deadline 1m53s\) → back into nginx → monitor 5s/);
    expect(r.stdout).not.toContain(FIXTURE_SECRET);
    expect(ids(await inspectProject(project))).toEqual(before);
    expect(readdirSync(state)).toEqual([]);
  }, 120_000);

  it('puts every web service on the new config, retires web-7…web-10, recreates nginx, backs up the old config', async () => {
    const before = await inspectProject(project);
    const r = await cli(['rollout', OPTIMIZED, '--project', project, '--state-dir', state], env);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain(`Rolled out ${project}`);
    expect(`${r.stdout}${r.stderr}`).not.toContain(FIXTURE_SECRET);
    // Plain timestamped lines without a terminal.
    expect(r.stderr).toMatch(/\[\d\d:\d\d:\d\d\] .*web-1: updated, healthy after/);

    const after = await inspectSettled(project);
    expect([...after.keys()].sort()).toEqual(['nginx', 'redis', ...WEB_NEW].sort());
    for (const s of WEB_NEW) {
      const c = after.get(s)!;
      expect(c.Id).not.toBe(before.get(s)!.Id);
      expect(c.State.Health?.Status).toBe('healthy');
      expect(c.HostConfig.Memory).toBe(1920 * MB);
      expect(c.HostConfig.NanoCpus).toBe(0.3125e9);
      expect(c.Config.Cmd.join(' ')).toBe('gunicorn arena_backend.wsgi --bind 0.0.0.0:8000 --workers 4 --worker-class gthread --threads 4 --timeout 300 --graceful-timeout 60 --keep-alive 75 --max-requests 1000 --max-requests-jitter 100 --worker-tmp-dir /dev/shm');
      expect(c.Config.Healthcheck?.Test).toEqual(['CMD', 'curl', '-f', '--max-time', '25', 'http://localhost:8000/health/']);
      expect(c.Config.Healthcheck?.Timeout).toBe(30e9);
      expect(c.Config.Env).toContain('PYTHONMALLOC=malloc');
    }
    for (const s of WEB_RETIRED) expect(after.has(s)).toBe(false);
    // redis is the same in both plans: not touched.
    expect(after.get('redis')!.Id).toBe(before.get('redis')!.Id);
    expect(after.get('nginx')!.Id).not.toBe(before.get('nginx')!.Id);

    // nginx answers through its published port, from the new web services.
    const revisions = new Set<string>();
    for (let i = 0; i < 12; i += 1) {
      const res = await get(5180, '/');
      expect(res.status).toBe(200);
      revisions.add((JSON.parse(res.body) as { revision: string }).revision);
    }
    expect([...revisions]).toEqual(['optimized']);
    for (let i = 1; i <= 6; i += 1) expect((await get(5100 + i, '/health/')).status).toBe(200);

    // The backup holds the current files with matching sums, readable by the owner only.
    const projectDir = path.join(state, 'backups', project);
    const [backupName, ...more] = readdirSync(projectDir);
    expect(more).toEqual([]);
    const backup = path.join(projectDir, backupName!);
    expect(statSync(backup).mode & 0o777).toBe(0o700);
    const manifest = JSON.parse(readFileSync(path.join(backup, 'manifest.json'), 'utf8')) as {
      project: string; projectDirectory: string;
      composeFiles: Array<{ original: string; stored: string; sha256: string }>;
      referencedFiles: Array<{ original: string; stored: string; sha256: string }>;
      inspect: { stored: string; sha256: string };
    };
    expect(manifest.project).toBe(project);
    expect(manifest.projectDirectory).toBe(twins);
    expect(manifest.composeFiles.map((f) => f.original)).toEqual([ORIGINAL]);
    expect(manifest.referencedFiles.map((f) => f.original).sort()).toEqual([path.join(twins, 'arena.env'), path.join(twins, 'nginx', 'load-balancer.conf')]);
    for (const f of [...manifest.composeFiles, ...manifest.referencedFiles]) {
      const stored = readFileSync(path.join(backup, f.stored));
      expect(stored.equals(readFileSync(f.original))).toBe(true);
      expect(createHash('sha256').update(stored).digest('hex')).toBe(f.sha256);
    }
    const inspect = JSON.parse(readFileSync(path.join(backup, manifest.inspect.stored), 'utf8')) as Array<{ Id: string }>;
    expect(inspect.map((c) => c.Id).sort()).toEqual([...before.values()].map((c) => c.Id).sort());
    for (const f of listTree(backup)) expect(statSync(f).mode & 0o777).toBe(0o600);
    // The lock is released.
    expect(existsSync(path.join(state, 'locks', `${project}.lock`))).toBe(false);
  }, 900_000);

  it('a second rollout to the same plan has nothing to do', async () => {
    const before = ids(await inspectProject(project));
    const r = await cli(['rollout', OPTIMIZED, '--project', project, '--state-dir', state], env);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain(`Nothing to do: every service of ${project} already runs the target config.`);
    expect(ids(await inspectProject(project))).toEqual(before);
    // The journal has the one rollout that changed something.
    const h = await cli(['history', '--project', project, '--state-dir', state, '--output', 'json'], env);
    expect(h.exitCode, h.stderr).toBe(0);
    const history = JSON.parse(h.stdout) as { rollouts: Array<{ project: string; plan: string[]; result: string; finished: { changed: string[] } }> };
    expect(history.rollouts.map((x) => [x.project, x.plan, x.result])).toEqual([[project, [OPTIMIZED], 'succeeded']]);
    expect(history.rollouts[0]!.finished.changed).toEqual(['nginx', 'web-1', 'web-2', 'web-3', 'web-4', 'web-5', 'web-6', 'web-7', 'web-8', 'web-9', 'web-10']);
  }, 120_000);
});

describe('a target whose web container never becomes healthy', () => {
  const { project, env, state } = useFleet(OPTIMIZED, 52);

  it('refuses a target whose image the engine lacks before touching anything: exit 3, same containers, no backup', async () => {
    const before = ids(await inspectProject(project));
    const override = path.join(tempStateDir(), 'missing-image.yml');
    writeFileSync(override, 'services:\n  web-2:\n    image: arena-deploy/backend:does-not-exist\n');
    const r = await cli(['rollout', '-f', OPTIMIZED, '-f', override, '--project', project, '--state-dir', state], env);
    expect(r.exitCode, r.stderr).toBe(3);
    expect(r.stderr.trim().split('\n').filter((l) => l.startsWith('error: '))).toEqual([
      'error: The engine does not have the image arena-deploy/backend:does-not-exist (web-2): build or load it first (no image is pulled during a rollout).',
    ]);
    expect(ids(await inspectProject(project))).toEqual(before);
    expect(existsSync(path.join(state, 'backups'))).toBe(false);
  }, 120_000);

  it('refuses to roll out the plan that got SIGKILLed: exit 3 with the numbers, nothing touched', async () => {
    const before = ids(await inspectProject(project));
    const r = await cli(['rollout', ORIGINAL, '--project', project, '--state-dir', state], env);
    expect(r.exitCode, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/^error: The target plan would fail on unix:\/\/\/var\/run\/docker\.sock: web-1 needs about 4000 MB \(200 \+ 12 workers × 300 \+ 200\) but its limit is 1152 MB: over by 2848 MB, the OOM killer will SIGKILL it\. The same for web-2, web-3, web-4, web-5, web-6, web-7, web-8, web-9, web-10\.$/m);
    expect(ids(await inspectProject(project))).toEqual(before);
    expect(existsSync(path.join(state, 'backups'))).toBe(false);
  }, 120_000);

  it('rolls back the first web service, never touches the others, and exits 5 with a verdict', async () => {
    const before = await inspectProject(project);
    const r = await cli(['rollout', NEVER_HEALTHY, '--project', project, '--state-dir', state], env);
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(5);
    const lastLine = r.stderr.trim().split('\n').filter((l) => l.startsWith('error: '));
    expect(lastLine).toHaveLength(1);
    expect(lastLine[0]).toMatch(/^error: Rolled back: web-1: web-1 became unhealthy .* web-1 restored from the backup; every service of arena-test-[0-9a-f]+ is on the old config\.$/);
    // Why it failed: the health log's probes and the container's logs.
    expect(r.stderr).toContain('last health probes:');
    expect(r.stderr).toMatch(/exit 22: .*503/);
    expect(r.stderr).toContain('last 20 log lines:');
    expect(`${r.stdout}${r.stderr}`).not.toContain(FIXTURE_SECRET);
    expect(r.stderr).not.toMatch(/^\s+at /m);

    const after = await inspectSettled(project);
    // web-1 was recreated twice (target, then backup); it runs the old config again and is healthy.
    expect(after.get('web-1')!.Id).not.toBe(before.get('web-1')!.Id);
    expect(after.get('web-1')!.Config.Env).not.toContain('ARENA_UNHEALTHY=1');
    expect(after.get('web-1')!.Config.Env).toContain('ARENA_REVISION=optimized');
    // The others were never recreated.
    for (const s of ['web-2', 'web-3', 'web-4', 'web-5', 'web-6', 'nginx', 'redis']) expect(after.get(s)!.Id, s).toBe(before.get(s)!.Id);
    for (const [s, c] of after) expect(c.State.Health?.Status, s).toBe('healthy');
    expect(r.stdout).toMatch(/web-1 .* rolled back/);
    // web-1 was drained when it failed: its drain mark is not taken for an edit of the conf, so the restore uses the
    // project's own folder (not the backup's copies), and the conf is as it was.
    expect(r.stderr).toContain('web-1: marked down in nginx (load-balancer-optimized.conf), nginx reloaded; draining.');
    expect(r.stderr).not.toContain('changed since the backup');
    expect(after.get('web-1')!.Config.Labels['com.docker.compose.project.working_dir']).toBe(twins);
    expect(readFileSync(path.join(twins, 'nginx', 'load-balancer-optimized.conf'), 'utf8')).not.toContain('arena-deploy: drained');
  }, 600_000);
});

describe('a web service that crash-loops after its monitor window', () => {
  const { project, env, state } = useFleet(OPTIMIZED, 54);

  it('is caught by the final verification (restart count), and everything changed is rolled back: exit 5', async () => {
    const before = await inspectProject(project);
    const override = path.join(tempStateDir(), 'crash-web-3.yml');
    const web = (n: number) => `  web-${n}:\n    environment:\n      - ARENA_REVISION=v2\n${n === 3 ? '      - ARENA_CRASH_AFTER=8\n' : ''}`;
    writeFileSync(override, `services:\n${[1, 2, 3, 4, 5, 6].map(web).join('')}`);
    const r = await cli(['rollout', '-f', OPTIMIZED, '-f', override, '--project', project, '--state-dir', state, '--monitor', '1s'], env);
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(5);
    expect(r.stderr).toMatch(/^error: Rolled back: The fleet is not as planned after the rollout: web-3 restarted \d+ time\(s\) since it passed its monitor window \(last exit code 3\)/m);
    const after = await inspectSettled(project);
    for (const s of ['web-1', 'web-2', 'web-3', 'web-4', 'web-5', 'web-6']) {
      expect(after.get(s)!.Config.Env, s).toContain('ARENA_REVISION=optimized');
      expect(after.get(s)!.State.Health?.Status, s).toBe('healthy');
      expect(after.get(s)!.Id, s).not.toBe(before.get(s)!.Id);
    }
    expect(after.get('nginx')!.Id).toBe(before.get('nginx')!.Id);
    expect(r.stdout.trim().split('\n').pop()).toMatch(/^Rolled back: /);
  }, 900_000);
});

describe('arena-deploy rollback', () => {
  const { project, env, state } = useFleet(OPTIMIZED, 55);

  it('restores the newest backup after a successful rollout, and refuses an altered or incomplete one', async () => {
    const override = path.join(tempStateDir(), 'v3.yml');
    writeFileSync(override, 'services:\n  web-1:\n    environment:\n      - ARENA_REVISION=v3\n');
    const r = await cli(['rollout', '-f', OPTIMIZED, '-f', override, '--project', project, '--state-dir', state, '--monitor', '1s'], env);
    expect(r.exitCode, r.stderr).toBe(0);
    expect((await inspectProject(project)).get('web-1')!.Config.Env).toContain('ARENA_REVISION=v3');

    const back = await cli(['rollback', '--project', project, '--state-dir', state], env);
    expect(back.exitCode, back.stderr).toBe(0);
    expect(back.stdout).toMatch(new RegExp(`^Restored ${project} to the backup of .*: every service runs the backed-up config and is healthy\\.$`, 'm'));
    const after = await inspectSettled(project);
    expect(after.get('web-1')!.Config.Env).toContain('ARENA_REVISION=optimized');
    for (const [s, c] of after) expect(c.State.Health?.Status, s).toBe('healthy');

    const backups = path.join(state, 'backups', project);
    const newest = path.join(backups, readdirSync(backups).sort().pop()!);
    const before = ids(after);
    writeFileSync(path.join(newest, 'compose', 'docker-compose.loadbalanced.optimized.yml'), '# tampered\n', { flag: 'a' });
    const tampered = await cli(['rollback', '--to', newest, '--state-dir', state], env);
    expect(tampered.exitCode).toBe(3);
    expect(tampered.stderr.trim()).toBe(`error: The backup ${newest} was altered: the sha256 of compose/docker-compose.loadbalanced.optimized.yml does not match its manifest.`);
    rmSync(path.join(newest, 'manifest.json'));
    const incomplete = await cli(['rollback', '--to', newest, '--state-dir', state], env);
    expect(incomplete.exitCode).toBe(3);
    expect(incomplete.stderr.trim()).toBe(`error: The backup ${newest} has no readable manifest.json: it is incomplete.`);
    expect(ids(await inspectProject(project))).toEqual(before);
  }, 600_000);
});

describe('no engine reachable', () => {
  it.each([
    ['unix:///nonexistent/docker.sock', /^error: Cannot reach the Docker engine at unix:\/\/\/nonexistent\/docker\.sock \(ENOENT\): start it/],
    ['tcp://127.0.0.1:1', /^error: Cannot reach the Docker engine at tcp:\/\/127\.0\.0\.1:1 \(ECONNREFUSED\): start it/],
    ['nonsense://x', /^error: DOCKER_HOST "nonsense:\/\/x" is not a valid address/],
  ])('DOCKER_HOST=%s: one sentence, exit 4, no stack trace, nothing written', async (host, message) => {
    const state = tempStateDir();
    const r = await cli(['rollout', OPTIMIZED, '--project', uniqueProject(), '--state-dir', state], { ...fleetEnv(53), DOCKER_HOST: host });
    expect(r.exitCode).toBe(4);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(message);
    expect(readdirSync(state)).toEqual([]);
  }, 60_000);
});

describe('validate with no engine at all', () => {
  const noEngine = { ...fleetEnv(53), DOCKER_HOST: 'unix:///nonexistent/docker.sock' };
  it('finds the guide diagnosis in the original plan: exit 3', async () => {
    const r = await cli(['validate', 'plans/docker-compose.loadbalanced.yml', '--host-cpus', '16', '--host-memory', '64g'], noEngine);
    expect(r.exitCode, r.stderr).toBe(3);
    expect(r.stdout).toContain('Host: 16 vCPUs, 65536 MB memory');
    expect(r.stdout).toMatch(/error +memory-overcommit +\[web-1…web-10\]\n +web-1 needs about 4000 MB \(200 \+ 12 workers × 300 \+ 200\) but its limit is 3072 MB: over by 928 MB/);
    expect(r.stdout).toContain('CPU limits add up to 22+ of 16 vCPUs (137.5 % or more)');
    expect(r.stdout).toMatch(/warning +health-timeout-too-short/);
    expect(r.stdout).toContain('720 request handlers');
  }, 60_000);

  it('passes the optimized plan honestly, side by side with the original: exit 0', async () => {
    const r = await cli(['validate', 'plans/docker-compose.loadbalanced.optimized.yml', '--against', 'plans/docker-compose.loadbalanced.yml', '--host-cpus', '16', '--host-memory', '64g', '--output', 'json'], noEngine);
    expect(r.exitCode, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { version: number; findings: Array<{ rule: string; severity: string }>; tables: { totals: { handlers: number } }; against: { tables: { totals: { handlers: number } } } };
    expect(report.version).toBe(1);
    expect(report.findings.map((f) => `${f.severity} ${f.rule}`)).toEqual(['warning host-cpu-overcommit', ...Array(6).fill('info workers-formula')]);
    expect(report.against.tables.totals.handlers).toBe(720);
    expect(report.tables.totals.handlers).toBe(96);
  }, 60_000);

  it('says when host rules are skipped', async () => {
    const r = await cli(['validate', 'plans/docker-compose.loadbalanced.optimized.yml'], noEngine);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Host: unknown — no host capacity known .*host rules skipped\./);
  }, 60_000);
});
