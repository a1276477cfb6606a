/** End to end on the real engine: a steady stream of requests through nginx during a full rollout, and none fails. */
import { readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import autocannon from 'autocannon';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { composeDown, fleetEnv, inspectProject, killRunningCli, OPTIMIZED, ORIGINAL, requireEngine, startCli, tempStateDir, twins, uniqueProject } from './helpers.js';

const CONF = path.join(twins, 'nginx', 'load-balancer.conf');
const CONF_OPTIMIZED = path.join(twins, 'nginx', 'load-balancer-optimized.conf');

/** What the load generator saw. */
interface Load {
  readonly requests: number;
  /** When each failed request failed (ms since the epoch) and why. */
  readonly errorsAt: ReadonlyArray<{ at: number; code: string }>;
  readonly failures: { errors: number; timeouts: number; non2xx: number; statusCodes: Record<string, number> };
  readonly revisions: Map<string, number>;
}

/**
 * autocannon against nginx's published port: `rate` requests a second over a few connections, every other one a
 * 0.4 s request so that some are in flight whenever a container is drained; at most `maxS` seconds and `rate × maxS`
 * requests, stopped earlier by `stop()`.
 */
function steadyLoad(port: number, rate: number, maxS: number): { done: Promise<Load>; stop: () => void } {
  const revisions = new Map<string, number>();
  const errorsAt: Array<{ at: number; code: string }> = [];
  const inst = autocannon({
    url: `http://127.0.0.1:${port}`,
    connections: 8,
    overallRate: rate,
    duration: maxS,
    amount: rate * maxS,
    timeout: 20,
    requests: [
      {
        method: 'GET',
        path: '/',
        onResponse: (status: number, body: string) => {
          if (status !== 200) return;
          try {
            // After a reconnect autocannon may start the request list over: a /slow/ answer ({"slept": …}) can land here.
            const parsed = JSON.parse(body) as { revision?: string | null };
            if (!('revision' in parsed)) return;
            const r = parsed.revision ?? 'none';
            revisions.set(r, (revisions.get(r) ?? 0) + 1);
          } catch {
            revisions.set('unparsable', (revisions.get('unparsable') ?? 0) + 1);
          }
        },
      },
      { method: 'GET', path: '/slow/?seconds=0.4' },
    ],
  } as autocannon.Options);
  inst.on('reqError', (err: NodeJS.ErrnoException) => errorsAt.push({ at: Date.now(), code: err.code ?? err.message }));
  const done = new Promise<Load>((resolve, reject) => {
    inst.on('done', (res: autocannon.Result) => {
      const statusCodes: Record<string, number> = {};
      for (const [code, v] of Object.entries(res.statusCodeStats ?? {})) statusCodes[code] = (v as { count: number }).count;
      resolve({ requests: res.requests.total, errorsAt, failures: { errors: res.errors, timeouts: res.timeouts, non2xx: res.non2xx, statusCodes }, revisions });
    });
    inst.on('error', reject);
  });
  return { done, stop: () => inst.stop() };
}

function fileFacts(file: string) {
  const st = statSync(file);
  return { bytes: readFileSync(file).toString('base64'), ino: st.ino, mode: st.mode, uid: st.uid, gid: st.gid };
}

/**
 * Like useFleet, but waits for health itself: on a busy 2-core machine one of the original twin's 120 booting gunicorn
 * workers can miss a 10 s health probe, which makes `up --wait` give up at once although the container turns healthy.
 */
function useTolerantFleet(file: string, portPrefix: number): { project: string; env: Record<string, string>; state: string } {
  const fleet = { project: uniqueProject(), env: fleetEnv(portPrefix), state: tempStateDir() };
  beforeAll(async () => {
    await requireEngine();
    await execa('docker', ['compose', '--project-name', fleet.project, '--file', file, 'up', '--detach'], { env: fleet.env, stdin: 'ignore' });
    const until = Date.now() + 540_000;
    for (;;) {
      const all = [...(await inspectProject(fleet.project)).values()];
      if (all.length > 0 && all.every((c) => c.State.Health?.Status === 'healthy')) return;
      if (Date.now() > until) throw new Error(`the fleet did not become healthy in 9 minutes: ${all.map((c) => `${c.Name} ${c.State.Health?.Status}`).join(', ')}`);
      await new Promise((r) => setTimeout(r, 2000));
    }
  }, 600_000);
  afterAll(async () => {
    killRunningCli();
    await composeDown(fleet.project);
  }, 120_000);
  return fleet;
}

/** What a rollout under load saw: the CLI's result, the load, the nginx container's events, and a timeline to read. */
interface LoadedRollout {
  readonly r: { exitCode: number | undefined; stdout: string; stderr: string };
  readonly seen: Load;
  readonly nginxEvents: ReadonlyArray<{ at: number; action: string }>;
  readonly story: string;
}

/**
 * Steady load through nginx's published port from 3 s before `arena-deploy rollout <plan…>` to 3 s after it, with
 * the project's container events and the CLI's lines on one timeline, to place any failed request.
 */
async function rolloutUnderLoad(project: string, env: Record<string, string>, state: string, plan: readonly string[], port: number): Promise<LoadedRollout> {
  const timeline: Array<{ at: number; what: string }> = [];
  const events = execa('docker', ['events', '--filter', `label=com.docker.compose.project=${project}`, '--filter', 'type=container', '--format', '{{.TimeNano}} {{index .Actor.Attributes "com.docker.compose.service"}} {{.Action}}'], { reject: false, stdin: 'ignore', buffer: false });
  const nginxEvents: Array<{ at: number; action: string }> = [];
  let partial = '';
  events.stdout?.on('data', (d: Buffer) => {
    partial += d.toString();
    const cut = partial.lastIndexOf('\n');
    if (cut < 0) return;
    for (const l of partial.slice(0, cut).split('\n').filter(Boolean)) {
      const [nano, service, ...action] = l.split(' ');
      const at = Math.round(Number(nano) / 1e6);
      if (service === 'nginx' && !action.join(' ').startsWith('exec_')) nginxEvents.push({ at, action: action.join(' ') });
      if (!action.join(' ').startsWith('exec_')) timeline.push({ at, what: `event ${service} ${action.join(' ')}` });
    }
    partial = partial.slice(cut + 1);
  });
  const load = steadyLoad(port, 30, 300);
  // Traffic flows before the rollout starts.
  await new Promise((res) => setTimeout(res, 3000));
  const run = startCli(['rollout', ...plan, '--project', project, '--state-dir', state], env, 300_000);
  let seenLen = 0;
  const lines = setInterval(() => {
    const err = run.stderr();
    const fresh = err.slice(seenLen);
    const cut = fresh.lastIndexOf('\n');
    if (cut < 0) return;
    for (const l of fresh.slice(0, cut).split('\n').filter(Boolean)) timeline.push({ at: Date.now(), what: `cli ${l.trim()}` });
    seenLen += cut + 1;
  }, 50);
  const r = await run.done;
  clearInterval(lines);
  // And goes on a moment after it ended.
  await new Promise((res) => setTimeout(res, 3000));
  load.stop();
  const seen = await load.done;
  events.kill();
  await events;
  for (const e of seen.errorsAt) timeline.push({ at: e.at, what: `FAILED REQUEST ${e.code}` });
  timeline.sort((a, b) => a.at - b.at);
  const t0 = timeline[0]?.at ?? 0;
  const story = timeline.map((t) => `${((t.at - t0) / 1000).toFixed(2)}s ${t.what}`).join('\n');
  return { r, seen, nginxEvents, story };
}

/** Answers came from the old revision and from the new one, and from no other; the conf check follows it in each test. */
function expectRevisions(seen: Load, before: string, after: string): void {
  expect(seen.revisions.get(before) ?? 0).toBeGreaterThan(10);
  expect(seen.revisions.get(after) ?? 0).toBeGreaterThan(10);
  expect([...seen.revisions.keys()].sort()).toEqual([before, after].sort());
}

/** Each web service was drained from nginx before it was recreated and put back after it was healthy. */
function expectDrained(stderr: string, conf: string): void {
  for (let i = 1; i <= 6; i += 1) {
    expect(stderr).toContain(`web-${i}: marked down in nginx (${conf}), nginx reloaded; draining.`);
    expect(stderr).toContain(`web-${i}: back in nginx (${conf}), nginx reloaded.`);
  }
}

describe('zero downtime: a full rollout of the optimized twin (all six web services to a new revision) under a steady load through nginx', () => {
  const { project, env, state } = useTolerantFleet(OPTIMIZED, 61);

  it('not one failed request: no connection error, no 5xx, no timeout; both revisions answer; the conf is as it was', async () => {
    const conf = fileFacts(CONF_OPTIMIZED);
    // The optimized twin with a new revision of the app on every web service: what a release is.
    const release = path.join(state, 'release.yml');
    writeFileSync(release, `services:\n${[1, 2, 3, 4, 5, 6].map((i) => `  web-${i}:\n    environment:\n      - ARENA_REVISION=release\n`).join('')}`);
    const { r, seen, nginxEvents, story } = await rolloutUnderLoad(project, env, state, [OPTIMIZED, release], 6180);
    expect(r.exitCode, r.stderr).toBe(0);
    expectDrained(r.stderr, 'load-balancer-optimized.conf');
    // nginx itself was left alone: the release does not change it.
    expect(nginxEvents, story).toEqual([]);
    expect(seen.requests).toBeGreaterThan(300);
    // The target: zero failed requests over the whole rollout.
    expect({ errors: seen.failures.errors, timeouts: seen.failures.timeouts, non2xx: seen.failures.non2xx, statusCodes: seen.failures.statusCodes }, `failed requests:\n${story}`).toEqual({ errors: 0, timeouts: 0, non2xx: 0, statusCodes: { '200': seen.requests } });
    expect(seen.errorsAt, story).toEqual([]);
    console.log(`zero-downtime (release): ${seen.requests} requests, all 200 (${seen.revisions.get('optimized') ?? 0} by the old revision, ${seen.revisions.get('release') ?? 0} by the new); 0 failed.`);
    expectRevisions(seen, 'optimized', 'release');
    expect(fileFacts(CONF_OPTIMIZED)).toEqual(conf);
  }, 480_000);
});

describe('zero downtime: the original twin rolled out to the optimized twin (nginx itself recreated) under a steady load', () => {
  const { project, env, state } = useTolerantFleet(ORIGINAL, 68);

  it('no 5xx and no timeout at any moment, and no failed request at all while the web services are drained, recreated and retired; both revisions answer; the conf is as it was', async () => {
    const conf = fileFacts(CONF);
    const { r, seen, nginxEvents, story } = await rolloutUnderLoad(project, env, state, [OPTIMIZED], 6880);
    expect(r.exitCode, r.stderr).toBe(0);
    expectDrained(r.stderr, 'load-balancer.conf');
    expect(seen.requests).toBeGreaterThan(300);
    // No 5xx and no timeout at any moment of the rollout.
    expect({ timeouts: seen.failures.timeouts, non2xx: seen.failures.non2xx, statusCodes: seen.failures.statusCodes }, story).toEqual({ timeouts: 0, non2xx: 0, statusCodes: { '200': seen.requests } });
    // nginx itself is recreated (the target mounts another conf): between the old one's kill and the new one
    // listening, its published port is closed, and nothing can drain that (see docs/zero-downtime.md).
    const killed = nginxEvents.find((e) => e.action === 'kill')?.at;
    const started = nginxEvents.filter((e) => e.action === 'start').pop()?.at;
    expect(killed, story).toBeDefined();
    expect(started, story).toBeDefined();
    const from = (killed as number) - 500;
    const to = (started as number) + 1000;
    expect(to - from, `nginx's own recreate took ${to - from} ms\n${story}`).toBeLessThan(30_000);
    const outside = seen.errorsAt.filter((e) => e.at < from || e.at > to);
    const inside = seen.errorsAt.filter((e) => e.at >= from && e.at <= to);
    // Zero failed requests while the ten web services are drained, recreated, put back and retired.
    expect(outside, `failures outside nginx's own recreate:\n${story}`).toEqual([]);
    // Inside it, connection errors only (a reset of the connections the old nginx held, refused connects until the new one listens).
    expect([...new Set(inside.map((e) => e.code))].filter((c) => !['ECONNRESET', 'ECONNREFUSED', 'EPIPE'].includes(c)), story).toEqual([]);
    expect(seen.failures.errors).toBe(seen.errorsAt.length);
    console.log(`zero-downtime: ${seen.requests} requests answered 200 (${seen.revisions.get('original') ?? 0} by original, ${seen.revisions.get('optimized') ?? 0} by optimized); 0 failed during the web services' rollout; ${inside.length} connection errors in nginx's own recreate (${to - from} ms window).`);
    expectRevisions(seen, 'original', 'optimized');
    expect(fileFacts(CONF)).toEqual(conf);
  }, 480_000);
});

describe('a rollout SIGKILLed while a service is drained: rollback puts the conf back', () => {
  const { project, env, state } = useTolerantFleet(OPTIMIZED, 69);

  it('the killed run leaves web-N marked down on disk; `arena-deploy rollback` writes the backup\'s bytes back in place and reloads nginx', async () => {
    const conf = fileFacts(CONF_OPTIMIZED);
    const v2 = path.join(state, 'v2.yml');
    writeFileSync(v2, `services:\n${[1, 2, 3, 4, 5, 6].map((i) => `  web-${i}:\n    environment:\n      - ARENA_REVISION=v2\n`).join('')}`);
    const run = startCli(['rollout', OPTIMIZED, v2, '--project', project, '--state-dir', state, '--monitor', '1s'], env, 300_000);
    await run.waitFor(/web-2: marked down in nginx/);
    run.kill('SIGKILL');
    await run.done;
    // The run had no chance to put it back: the mark is on disk, in the same inode.
    const left = readFileSync(CONF_OPTIMIZED, 'utf8');
    expect(left).toMatch(/server web-2:8000 max_fails=3 fail_timeout=30s down; # arena-deploy: drained/);
    expect(statSync(CONF_OPTIMIZED).ino).toBe(conf.ino);

    const back = startCli(['rollback', '--project', project, '--state-dir', state], env, 300_000);
    const r = await back.done;
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toContain(`Restored ${CONF_OPTIMIZED} from the backup (the interrupted rollout had marked services down in it) and reloaded nginx.`);
    expect(fileFacts(CONF_OPTIMIZED)).toEqual(conf);
    // The nginx that runs now has every web service in its upstream, none down.
    const nginx = (await inspectProject(project)).get('nginx')!;
    const dump = await execa('docker', ['exec', nginx.Id, 'nginx', '-T'], { reject: false });
    expect(dump.exitCode, dump.stderr).toBe(0);
    expect(dump.stdout).toContain('server web-2:8000 max_fails=3 fail_timeout=30s;');
    expect(dump.stdout).not.toContain('down;');
    // And routes to all six again (least_conn with one request at a time goes round the replicas).
    const hosts = new Set<string>();
    for (let i = 0; i < 24; i += 1) {
      const res = await fetch('http://127.0.0.1:6980/', { signal: AbortSignal.timeout(10_000) });
      expect(res.status).toBe(200);
      hosts.add((JSON.parse(await res.text()) as { hostname: string }).hostname);
    }
    expect(hosts.size).toBe(6);
  }, 420_000);

  it('a conf replaced by a rename since nginx started is not drained (nginx reads the old inode), and says so', async () => {
    const bytes = readFileSync(CONF_OPTIMIZED);
    // What an editor or a deploy script does: a new file renamed over the old one. nginx's bind mount keeps the old inode.
    const fresh = `${CONF_OPTIMIZED}.new`;
    writeFileSync(fresh, bytes);
    renameSync(fresh, CONF_OPTIMIZED);
    const v3 = path.join(state, 'v3.yml');
    writeFileSync(v3, 'services:\n  web-1:\n    environment:\n      - ARENA_REVISION=v3\n');
    const r = await startCli(['rollout', OPTIMIZED, v3, '--project', project, '--state-dir', state, '--services', 'web-1', '--monitor', '1s'], env, 300_000).done;
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toContain(`nginx: does not see ${CONF_OPTIMIZED} as written at /etc/nginx/conf.d/default.conf (the file was replaced since nginx started, or is another folder's): not drained, the file is as it was.`);
    expect(r.stderr).not.toContain('web-1: marked down');
    expect(readFileSync(CONF_OPTIMIZED).equals(bytes)).toBe(true);
  }, 300_000);
});
