/**
 * `npm run bench`: arena-deploy's rollout side by side with the guide's loop, plain `docker compose up -d` and a
 * single-node Docker Swarm, on the same 6-web-service fleet under the same steady load through nginx; and the CLI's
 * own start-up against `docker compose config --quiet`. Prints a markdown table and writes it with the JSON of every
 * run to bench/results/. See docs/benchmarks.md.
 *
 * A black box: the CLI is run as a user runs it (bin/arena-deploy, `--output json` for its event times), the fleet
 * is the optimized twin with the real plans' health check, and everything the bench creates is removed at the end.
 */
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { execa } from 'execa';

const root = path.resolve(import.meta.dirname, '..');
const BIN = path.join(root, 'bin', 'arena-deploy');
const TWINS = path.join(root, 'fixtures', 'compose', 'arena');
const PLANS = path.join(root, 'plans');
const WEB = [1, 2, 3, 4, 5, 6].map((i) => `web-${i}`);
const DAEMON_JSON = '/etc/docker/daemon.json';
const DOCKER_PID = '/var/run/docker.pid';
/** The real plans' health check (plans/docker-compose.loadbalanced.optimized.yml); the twin's is 1 s for tests. */
const REAL_HEALTH = { test: 'curl -f --max-time 25 http://localhost:8000/health/', interval: '30s', timeout: '30s', retries: 3, startPeriod: '60s' };

class BenchError extends Error {}

/** What to undo if the bench is interrupted (Ctrl-C): the fleets it made, the swarm, live-restore. Newest first. */
const cleanups: Array<() => Promise<void>> = [];
async function guarded<T>(undo: () => Promise<void>, body: () => Promise<T>): Promise<T> {
  cleanups.push(undo);
  try {
    return await body();
  } finally {
    cleanups.splice(cleanups.lastIndexOf(undo), 1);
    await undo();
  }
}
let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`bench: ${signal}: removing what the bench made, then stopping\n`);
    void (async () => {
      for (const undo of cleanups.reverse()) await undo().catch(() => undefined);
      process.exit(signal === 'SIGINT' ? 130 : signal === 'SIGTERM' ? 143 : 129);
    })();
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Options

interface Options {
  readonly runs: number;
  readonly cliRuns: number;
  readonly prefix: number;
  readonly swarmPrefix: number;
  readonly rate: number;
  readonly only: ReadonlySet<string>;
  /** Of the rollout section: which methods run. */
  readonly methods: ReadonlySet<string>;
  readonly record: boolean;
  readonly swarmBesideOthers: boolean;
}

const USAGE = `usage: npm run bench -- [--runs N] [--cli-runs N] [--rate N] [--only cli,rollout,swarm] [--methods arena-deploy,guide-loop,compose-up] [--port-prefix NN] [--swarm-port-prefix NN] [--record]

  --runs N               rollouts per method (default 3); each figure is the median
  --cli-runs N           runs of each CLI command (default 7)
  --rate N               steady load through nginx, requests a second (default 20)
  --only LIST            sections to run: cli, rollout (arena-deploy, the guide's loop, compose up -d), swarm (default all)
  --methods LIST         of the rollout section: arena-deploy, guide-loop, compose-up (default all)
  --port-prefix NN       the fleet's ports 127.0.0.1:NN01…NN06 and NN80 (default 76)
  --swarm-port-prefix NN the Swarm fleet's nginx on 127.0.0.1:NN80 (default 77)
  --record               also write the results into docs/benchmarks.md
  --swarm-beside-others  run the Swarm section although other containers run on the engine (see docs/benchmarks.md)`;

function parseOptions(argv: string[]): Options {
  let parsed;
  try {
    parsed = parseArgs({
    args: argv,
    options: {
      runs: { type: 'string', default: '3' },
      'cli-runs': { type: 'string', default: '7' },
      rate: { type: 'string', default: '20' },
      only: { type: 'string', default: 'cli,rollout,swarm' },
      methods: { type: 'string', default: 'arena-deploy,guide-loop,compose-up' },
      'port-prefix': { type: 'string', default: '76' },
      'swarm-port-prefix': { type: 'string', default: '77' },
      record: { type: 'boolean', default: false },
      'swarm-beside-others': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { values } = parsed;
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const int = (name: string, v: string, min: number, max: number) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be a whole number from ${min} to ${max}, got "${v}"`);
    return n;
  };
  const only = new Set(values.only.split(',').map((s) => s.trim()).filter(Boolean));
  for (const s of only) if (!['cli', 'rollout', 'swarm'].includes(s)) throw new UsageError(`--only takes cli, rollout and swarm, got "${s}"`);
  const methods = new Set(values.methods.split(',').map((s) => s.trim()).filter(Boolean));
  for (const m of methods) if (!['arena-deploy', 'guide-loop', 'compose-up'].includes(m)) throw new UsageError(`--methods takes arena-deploy, guide-loop and compose-up, got "${m}"`);
  return {
    runs: int('runs', values.runs, 1, 20),
    cliRuns: int('cli-runs', values['cli-runs'], 1, 50),
    rate: int('rate', values.rate, 1, 200),
    prefix: int('port-prefix', values['port-prefix'], 10, 99),
    swarmPrefix: int('swarm-port-prefix', values['swarm-port-prefix'], 10, 99),
    only,
    methods,
    record: values.record,
    swarmBesideOthers: values['swarm-beside-others'],
  };
}

class UsageError extends Error {}

// ---------------------------------------------------------------------------------------------------------------
// Small tools

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (line: string) => process.stderr.write(`bench: ${line}\n`);

function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] as number;
}

async function docker(args: readonly string[], opts: { env?: Record<string, string>; cwd?: string; reject?: boolean } = {}) {
  return execa('docker', args, { stdin: 'ignore', reject: opts.reject ?? true, env: opts.env, cwd: opts.cwd });
}

/** One GET with a fresh connection; the status, or undefined for no answer. */
function get(url: string, timeoutMs: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
  });
}

/**
 * When the new container first answers 200 on a web port: polls every 20 ms from the moment its recreate starts,
 * first until the old container stops answering, then until the new one answers.
 */
function firstAnswer(port: number, signal: AbortSignal): Promise<number | undefined> {
  return (async () => {
    let seenDown = false;
    while (!signal.aborted) {
      const status = await get(`http://127.0.0.1:${port}/health/`, 2000);
      if (status === 200 && seenDown) return Date.now();
      if (status !== 200) seenDown = true;
      await sleep(20);
    }
    return undefined;
  })();
}

// ---------------------------------------------------------------------------------------------------------------
// Steady load through nginx

interface LoadResult {
  readonly requests: number;
  readonly failed: number;
  readonly errors: number;
  readonly timeouts: number;
  readonly non2xx: number;
}

function steadyLoad(port: number, rate: number): { stop: () => Promise<LoadResult> } {
  let settle: (r: LoadResult) => void = () => undefined;
  let fail: (e: Error) => void = () => undefined;
  const done = new Promise<LoadResult>((resolve, reject) => {
    settle = resolve;
    fail = reject;
  });
  const inst = autocannon(
    {
      url: `http://127.0.0.1:${port}`,
      connections: 8,
      overallRate: rate,
      duration: 3600,
      amount: rate * 3600,
      timeout: 20,
      requests: [
        { method: 'GET', path: '/' },
        { method: 'GET', path: '/slow/?seconds=0.4' },
      ],
    },
    (err, r) => (err ? fail(err) : settle({ requests: r.requests.total, failed: r.errors + r.non2xx, errors: r.errors, timeouts: r.timeouts, non2xx: r.non2xx })),
  );
  return {
    stop: async () => {
      inst.stop();
      return done;
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The compose fleet: the optimized twin with the real plans' health check, copied to a folder of the bench's own

interface Fleet {
  readonly project: string;
  readonly dir: string;
  readonly files: string[];
  readonly env: Record<string, string>;
  readonly prefix: number;
  revision: number;
}

function composeArgs(f: Fleet, files: readonly string[]): string[] {
  return ['compose', '--project-name', f.project, '--project-directory', f.dir, ...files.flatMap((x) => ['--file', x])];
}

function webPort(f: { prefix: number }, service: string): number {
  return Number(`${f.prefix}0${service.slice('web-'.length)}`);
}

async function setUpFleet(id: string, prefix: number): Promise<Fleet> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'arena-bench-fleet-'));
  cpSync(path.join(TWINS, 'docker-compose.loadbalanced.optimized.yml'), path.join(dir, 'docker-compose.yml'));
  cpSync(path.join(TWINS, 'nginx'), path.join(dir, 'nginx'), { recursive: true });
  cpSync(path.join(TWINS, 'arena.env'), path.join(dir, 'arena.env'));
  const health = path.join(dir, 'real-health-check.yml');
  writeFileSync(
    health,
    `# The real plans' health check on the twin's web services.\nservices:\n${WEB.map((s) => `  ${s}:\n    healthcheck:\n      interval: ${REAL_HEALTH.interval}\n      timeout: ${REAL_HEALTH.timeout}\n      retries: ${REAL_HEALTH.retries}\n      start_period: ${REAL_HEALTH.startPeriod}\n`).join('')}`,
  );
  const fleet: Fleet = { project: `arena-bench-${id}`, dir, files: [path.join(dir, 'docker-compose.yml'), health], env: { ...process.env, ARENA_PORT_PREFIX: String(prefix) } as Record<string, string>, prefix, revision: 0 };
  const rev = revisionFile(fleet);
  log(`bringing up ${fleet.project} (6 web services, nginx, redis) on 127.0.0.1:${prefix}xx`);
  await docker([...composeArgs(fleet, [...fleet.files, rev]), 'up', '--detach'], { env: fleet.env });
  await settle(fleet, [...fleet.files, rev]);
  return fleet;
}

/** A compose file giving every web service the next revision: what a release changes. */
function revisionFile(f: Fleet): string {
  f.revision += 1;
  const file = path.join(f.dir, `revision-${f.revision}.yml`);
  writeFileSync(file, `services:\n${WEB.map((s) => `  ${s}:\n    environment:\n      - ARENA_REVISION=bench-${f.revision}\n`).join('')}`);
  return file;
}

/** Waits until every container of the fleet is healthy by Docker's account, then has nginx resolve the web services anew. */
async function settle(f: Fleet, files: readonly string[]): Promise<void> {
  const until = Date.now() + 10 * 60_000;
  for (;;) {
    const ps = await docker([...composeArgs(f, files), 'ps', '--all', '--format', 'json'], { env: f.env });
    const rows = ps.stdout.trim().startsWith('[') ? (JSON.parse(ps.stdout) as Array<{ Service: string; State: string; Health: string }>) : ps.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { Service: string; State: string; Health: string });
    if (rows.length >= 8 && rows.every((r) => r.State === 'running' && (r.Health === 'healthy' || r.Health === ''))) break;
    if (Date.now() > until) throw new BenchError(`the fleet ${f.project} did not become healthy in 10 minutes: ${rows.map((r) => `${r.Service} ${r.State} ${r.Health}`).join(', ')}`);
    await sleep(1000);
  }
  // A run that recreated containers without reloading nginx (the guide's loop, compose up) leaves nginx with the old
  // addresses; each run starts from an nginx that knows the current ones.
  await docker([...composeArgs(f, files), 'exec', '-T', 'nginx', 'nginx', '-s', 'reload'], { env: f.env });
  await sleep(1500);
}

async function tearDownFleet(f: Fleet): Promise<void> {
  await docker(['compose', '--project-name', f.project, 'down', '--volumes', '--remove-orphans', '--timeout', '5'], { env: f.env, reject: false });
  rmSync(f.dir, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------------------------
// The methods

interface ServiceTiming {
  readonly service: string;
  /** Recreate started → the new container's first 200 on /health/ (the bench's own poller). */
  readonly toFirstAnswerMs: number | undefined;
  /** The tool's "healthy" minus that first 200 (arena-deploy only). */
  readonly lagMs?: number | undefined;
  readonly via?: string | undefined;
}

interface RunResult {
  readonly method: Method;
  readonly run: number;
  readonly totalMs: number;
  readonly ok: boolean;
  readonly note?: string;
  readonly services: readonly ServiceTiming[];
  /** Configured waits inside the total (monitor windows, the guide's sleeps). */
  readonly waitsMs: number;
  /** arena-deploy: the drain steps (mark down, nginx -t, reload, the wait for nginx's connections) and the put-backs. */
  readonly drainMs?: number;
  readonly load: LoadResult;
}

type Method = 'arena-deploy' | 'guide-loop' | 'compose-up' | 'swarm';

/** Runs `body` under the steady load: 2 s of load before, 2 s after. */
async function underLoad<T>(port: number, rate: number, body: () => Promise<T>): Promise<{ value: T; load: LoadResult }> {
  const load = steadyLoad(port, rate);
  await sleep(2000);
  try {
    const value = await body();
    await sleep(2000);
    return { value, load: await load.stop() };
  } catch (err) {
    await load.stop();
    throw err;
  }
}

async function runArena(f: Fleet, opts: Options, run: number): Promise<RunResult> {
  const previous = [...f.files, path.join(f.dir, `revision-${f.revision}.yml`)];
  const target = [...f.files, revisionFile(f)];
  await settle(f, previous);
  const state = mkdtempSync(path.join(os.tmpdir(), 'arena-bench-state-'));
  const polls = new Map<string, Promise<number | undefined>>();
  const recreateAt = new Map<string, number>();
  const healthyAt = new Map<string, { at: number; via: string | undefined }>();
  let monitorMs = 0;
  let drainMs = 0;
  const stopPolls = new AbortController();
  try {
    const { value, load } = await underLoad(Number(`${f.prefix}80`), opts.rate, async () => {
      const t0 = Date.now();
      const child = execa('node', [BIN, 'rollout', ...target, '--project', f.project, '--state-dir', state, '--output', 'json'], { cwd: f.dir, env: { ...f.env, NO_COLOR: '1' }, stdin: 'ignore', reject: false, buffer: { stdout: false, stderr: true } });
      let partial = '';
      child.stdout?.on('data', (d: Buffer) => {
        partial += d.toString();
        const cut = partial.lastIndexOf('\n');
        if (cut < 0) return;
        for (const line of partial.slice(0, cut).split('\n').filter(Boolean)) {
          const e = JSON.parse(line) as { type: string; step?: string; service?: string; to?: string; via?: string; time: string; durationMs?: number; status?: string };
          const at = Date.parse(e.time);
          if (e.type === 'step-started' && e.step === 'recreate' && e.service && WEB.includes(e.service)) {
            recreateAt.set(e.service, at);
            polls.set(e.service, firstAnswer(webPort(f, e.service), stopPolls.signal));
          }
          if (e.type === 'health' && e.to === 'healthy' && e.service) healthyAt.set(e.service, { at, via: e.via });
          if (e.type === 'step-finished' && e.step === 'monitor' && e.status === 'ok') monitorMs += e.durationMs ?? 0;
          if (e.type === 'step-finished' && (e.step === 'drain' || e.step === 'undrain')) drainMs += e.durationMs ?? 0;
        }
        partial = partial.slice(cut + 1);
      });
      const r = await child;
      return { r, totalMs: Date.now() - t0 };
    });
    const services: ServiceTiming[] = [];
    for (const s of WEB) {
      const first = await Promise.race([polls.get(s) ?? Promise.resolve(undefined), sleep(5000).then(() => undefined)]);
      const started = recreateAt.get(s);
      const healthy = healthyAt.get(s);
      services.push({ service: s, toFirstAnswerMs: first !== undefined && started !== undefined ? first - started : undefined, lagMs: first !== undefined && healthy ? healthy.at - first : undefined, via: healthy?.via });
    }
    const ok = value.r.exitCode === 0;
    return { method: 'arena-deploy', run, totalMs: value.totalMs, ok, ...(ok ? {} : { note: `exit ${value.r.exitCode}: ${lastLines(String(value.r.stderr), 3)}` }), services, waitsMs: monitorMs, drainMs, load };
  } finally {
    stopPolls.abort();
    rmSync(state, { recursive: true, force: true });
  }
}

/** The guide's loop, as written: `docker compose up -d --no-deps web-$i; sleep 30` for each web service. */
async function runGuide(f: Fleet, opts: Options, run: number): Promise<RunResult> {
  const previous = [...f.files, path.join(f.dir, `revision-${f.revision}.yml`)];
  const target = [...f.files, revisionFile(f)];
  await settle(f, previous);
  const stopPolls = new AbortController();
  const timings: Array<Promise<ServiceTiming>> = [];
  let ok = true;
  let note: string | undefined;
  try {
    const { value: totalMs, load } = await underLoad(Number(`${f.prefix}80`), opts.rate, async () => {
      const t0 = Date.now();
      for (const s of WEB) {
        const started = Date.now();
        const first = firstAnswer(webPort(f, s), stopPolls.signal);
        timings.push(first.then((at) => ({ service: s, toFirstAnswerMs: at !== undefined ? at - started : undefined })));
        const r = await docker([...composeArgs(f, target), 'up', '-d', '--no-deps', s], { env: f.env, reject: false });
        if (r.exitCode !== 0) {
          ok = false;
          note = `${s}: ${lastLines(String(r.stderr), 2)}`;
        }
        await sleep(30_000);
      }
      return Date.now() - t0;
    });
    const services = await Promise.all(timings.map((t) => Promise.race([t, sleep(1000).then(() => undefined)])));
    return { method: 'guide-loop', run, totalMs, ok, ...(note ? { note } : {}), services: services.map((s, i) => s ?? { service: WEB[i] as string, toFirstAnswerMs: undefined }), waitsMs: WEB.length * 30_000, load };
  } finally {
    stopPolls.abort();
  }
}

/** `docker compose up -d` of the whole target at once; the total runs until every new container answers. */
async function runComposeUp(f: Fleet, opts: Options, run: number): Promise<RunResult> {
  const previous = [...f.files, path.join(f.dir, `revision-${f.revision}.yml`)];
  const target = [...f.files, revisionFile(f)];
  await settle(f, previous);
  const stopPolls = new AbortController();
  let failure: string | undefined;
  let commandMs = 0;
  try {
    const { value, load } = await underLoad(Number(`${f.prefix}80`), opts.rate, async () => {
      const t0 = Date.now();
      const firsts = WEB.map((s) => firstAnswer(webPort(f, s), stopPolls.signal));
      const r = await docker([...composeArgs(f, target), 'up', '-d'], { env: f.env, reject: false });
      commandMs = Date.now() - t0;
      if (r.exitCode !== 0) failure = lastLines(String(r.stderr), 2);
      const ats = await Promise.race([Promise.all(firsts), sleep(300_000).then(() => [] as Array<number | undefined>)]);
      return { t0, ats, totalMs: Date.now() - t0 };
    });
    const services = WEB.map((s, i) => ({ service: s, toFirstAnswerMs: value.ats[i] !== undefined ? (value.ats[i] as number) - value.t0 : undefined }));
    return { method: 'compose-up', run, totalMs: value.totalMs, ok: failure === undefined, note: failure ?? `the command itself returned after ${(commandMs / 1000).toFixed(1)} s`, services, waitsMs: 0, load };
  } finally {
    stopPolls.abort();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Swarm: a single-node swarm made for the run, the same image, command, limits and health check as one service of
// 6 replicas behind the same nginx image (resolving the replicas through Swarm's DNS), then left.

interface SwarmFleet {
  readonly service: string;
  readonly network: string;
  readonly nginx: string;
  readonly dir: string;
  readonly port: number;
  revision: number;
}

/** Swarm refuses a daemon with live-restore: it is turned off by a reload for the Swarm runs and back on after. */
async function withoutLiveRestore<T>(body: () => Promise<T>): Promise<T> {
  const info = await docker(['info', '--format', '{{.LiveRestoreEnabled}}']);
  if (info.stdout.trim() !== 'true') return body();
  if (!existsSync(DAEMON_JSON) || !existsSync(DOCKER_PID)) {
    throw new BenchError(`the engine runs with live-restore, which Swarm refuses, and the bench can only turn it off through ${DAEMON_JSON} and ${DOCKER_PID} (scripts/start-engine.sh sets it there)`);
  }
  const original = readFileSync(DAEMON_JSON);
  const conf = JSON.parse(original.toString()) as Record<string, unknown>;
  if (conf['live-restore'] !== true) throw new BenchError(`the engine runs with live-restore but ${DAEMON_JSON} does not set it (a --live-restore flag cannot be reloaded): start dockerd with scripts/start-engine.sh`);
  const pid = Number(readFileSync(DOCKER_PID, 'utf8').trim());
  const reload = async (want: string) => {
    process.kill(pid, 'SIGHUP');
    for (let i = 0; i < 50; i += 1) {
      if ((await docker(['info', '--format', '{{.LiveRestoreEnabled}}'])).stdout.trim() === want) return;
      await sleep(200);
    }
    throw new BenchError(`dockerd did not switch live-restore to ${want} after a reload`);
  };
  writeFileSync(DAEMON_JSON, JSON.stringify({ ...conf, 'live-restore': false }, null, 2) + '\n');
  log(`live-restore turned off for the Swarm runs (${DAEMON_JSON}, reload)`);
  let restored = false;
  return guarded(async () => {
    if (restored) return;
    restored = true;
    writeFileSync(DAEMON_JSON, original);
    await reload('true').then(() => log('live-restore back on'), (err: Error) => log(`could not turn live-restore back on: ${err.message}; restore ${DAEMON_JSON} and send dockerd SIGHUP`));
  }, async () => {
    await reload('false');
    return body();
  });
}

async function twinWebSpec(): Promise<{ image: string; command: string[]; env: string[]; cpus: string; memory: string; stopGrace: string }> {
  const r = await docker(['compose', '--file', path.join(TWINS, 'docker-compose.loadbalanced.optimized.yml'), 'config', '--format', 'json'], { env: { ...process.env, ARENA_PORT_PREFIX: '76' } as Record<string, string> });
  const web = (JSON.parse(r.stdout) as { services: Record<string, { image: string; command: string[]; environment: Record<string, string>; deploy: { resources: { limits: { cpus: string; memory: string } } }; stop_grace_period?: string }> }).services['web-1'];
  if (!web) throw new BenchError('the optimized twin has no web-1');
  const mem = Number(web.deploy.resources.limits.memory);
  return {
    image: web.image,
    command: web.command,
    env: Object.entries(web.environment).map(([k, v]) => `${k}=${v}`),
    cpus: String(web.deploy.resources.limits.cpus),
    memory: Number.isFinite(mem) ? `${Math.round(mem / 1024 / 1024)}M` : String(web.deploy.resources.limits.memory),
    stopGrace: web.stop_grace_period ?? '70s',
  };
}

async function setUpSwarm(id: string, prefix: number): Promise<SwarmFleet> {
  const state = (await docker(['info', '--format', '{{.Swarm.LocalNodeState}}'])).stdout.trim();
  if (state !== 'inactive') throw new BenchError(`this engine is already part of a swarm (${state}): the bench makes its own and will not touch yours`);
  await docker(['swarm', 'init', '--advertise-addr', '127.0.0.1', '--listen-addr', '127.0.0.1:2377']);
  const spec = await twinWebSpec();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'arena-bench-swarm-'));
  const fleet: SwarmFleet = { service: `arena-bench-web-${id}`, network: `arena-bench-${id}`, nginx: `arena-bench-nginx-${id}`, dir, port: Number(`${prefix}80`), revision: 0 };
  await docker(['network', 'create', '--driver', 'overlay', '--attachable', '--label', `arena-bench=${id}`, fleet.network]);
  // No routing mesh on this kernel (no IPVS): the replicas are reached by DNS round robin, as nginx resolves them.
  const conf = readFileSync(path.join(TWINS, 'nginx', 'load-balancer-optimized.conf'), 'utf8');
  const location = conf.slice(conf.indexOf('    location / {'), conf.indexOf('}', conf.indexOf('    location / {')) + 1);
  writeFileSync(
    path.join(dir, 'default.conf'),
    [
      '# The optimized twin\'s nginx settings; the upstream is the Swarm service, resolved by Swarm\'s DNS every second.',
      'resolver 127.0.0.11 valid=1s ipv6=off;',
      'server {',
      '    listen 80;',
      '    location = /nginx-health { return 200 "ok\\n"; }',
      location.replace('proxy_pass http://arena_backend;', `set $arena_backend http://${fleet.service}:8000;\n        proxy_pass $arena_backend;`).replace('proxy_set_header Connection "";', 'proxy_set_header Connection "";'),
      '}',
      '',
    ].join('\n'),
  );
  log(`bringing up the Swarm service ${fleet.service} (6 replicas) behind nginx on 127.0.0.1:${fleet.port}`);
  await docker([
    'service', 'create', '--detach=false', '--quiet', '--name', fleet.service, '--replicas', '6', '--network', fleet.network, '--endpoint-mode', 'dnsrr',
    '--limit-cpu', spec.cpus, '--limit-memory', spec.memory, '--stop-grace-period', spec.stopGrace,
    '--health-cmd', REAL_HEALTH.test, '--health-interval', REAL_HEALTH.interval, '--health-timeout', REAL_HEALTH.timeout, '--health-retries', String(REAL_HEALTH.retries), '--health-start-period', REAL_HEALTH.startPeriod,
    '--update-parallelism', '1', '--update-delay', '0s', '--update-failure-action', 'rollback', '--update-monitor', '5s', '--update-order', 'stop-first',
    '--label', `arena-bench=${id}`,
    ...spec.env.filter((e) => !e.startsWith('ARENA_REVISION=')).flatMap((e) => ['--env', e]), '--env', 'ARENA_REVISION=swarm-0',
    spec.image, ...spec.command,
  ]);
  await docker(['run', '--detach', '--name', fleet.nginx, '--label', `arena-bench=${id}`, '--network', fleet.network, '--publish', `127.0.0.1:${fleet.port}:80`, '--volume', `${path.join(dir, 'default.conf')}:/etc/nginx/conf.d/default.conf:ro`, 'arena-deploy/nginx:fixture']);
  for (let i = 0; i < 100 && (await get(`http://127.0.0.1:${fleet.port}/`, 2000)) !== 200; i += 1) await sleep(300);
  return fleet;
}

async function runSwarm(f: SwarmFleet, opts: Options, run: number): Promise<RunResult> {
  f.revision += 1;
  // Converged before the run: every replica healthy.
  await swarmHealthy(f);
  const { value, load } = await underLoad(f.port, opts.rate, async () => {
    const t0 = Date.now();
    const r = await docker(['service', 'update', '--detach=false', '--quiet', '--env-add', `ARENA_REVISION=swarm-${f.revision}`, f.service], { reject: false });
    const totalMs = Date.now() - t0;
    const status = (await docker(['service', 'inspect', '--format', '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}', f.service], { reject: false })).stdout.trim();
    return { r, totalMs, status };
  });
  const ok = value.r.exitCode === 0 && value.status === 'completed';
  return { method: 'swarm', run, totalMs: value.totalMs, ok, ...(ok ? {} : { note: `update ${value.status || 'unknown'}: ${lastLines(String(value.r.stderr), 2)}` }), services: [], waitsMs: WEB.length * 5000, load };
}

async function swarmHealthy(f: SwarmFleet): Promise<void> {
  const until = Date.now() + 10 * 60_000;
  while (Date.now() < until) {
    const ids = (await docker(['ps', '--quiet', '--filter', `label=com.docker.swarm.service.name=${f.service}`])).stdout.split('\n').filter(Boolean);
    if (ids.length === 6) {
      const health = (await docker(['inspect', '--format', '{{.State.Health.Status}}', ...ids])).stdout.split('\n');
      if (health.every((h) => h === 'healthy')) return;
    }
    await sleep(1000);
  }
  throw new BenchError(`the Swarm service ${f.service} did not have 6 healthy replicas in 10 minutes`);
}

async function tearDownSwarm(f: SwarmFleet | undefined, id: string): Promise<void> {
  if (f) {
    await docker(['rm', '--force', f.nginx], { reject: false });
    await docker(['service', 'rm', f.service], { reject: false });
    for (let i = 0; i < 120; i += 1) {
      if ((await docker(['ps', '--all', '--quiet', '--filter', `label=com.docker.swarm.service.name=${f.service}`])).stdout.trim() === '') break;
      await sleep(500);
    }
    await docker(['network', 'rm', f.network], { reject: false });
    rmSync(f.dir, { recursive: true, force: true });
  }
  await docker(['swarm', 'leave', '--force'], { reject: false });
  // Left by swarm init; nothing uses it once the node left.
  await docker(['network', 'rm', 'docker_gwbridge'], { reject: false });
  void id;
}

// ---------------------------------------------------------------------------------------------------------------
// The CLI: wall time and peak RSS (GNU time) against `docker compose config --quiet` on the same files

interface CliRow {
  readonly what: string;
  readonly command: string[];
  readonly wallMs: number;
  readonly peakRssMiB: number;
  readonly exitCodes: number[];
  readonly baseline: { wallMs: number; peakRssMiB: number };
}

async function measure(command: readonly string[]): Promise<{ wallMs: number; rssKiB: number; exitCode: number }> {
  const out = path.join(os.tmpdir(), `arena-bench-time-${process.pid}`);
  const t0 = performance.now();
  const r = await execa('/usr/bin/time', ['-f', '%M', '-o', out, ...command], { reject: false, stdin: 'ignore', cwd: root, env: { ...process.env, NO_COLOR: '1' } });
  const wallMs = performance.now() - t0;
  const rssKiB = Number(readFileSync(out, 'utf8').trim().split('\n').pop());
  rmSync(out, { force: true });
  return { wallMs, rssKiB, exitCode: r.exitCode ?? -1 };
}

async function benchCli(opts: Options): Promise<CliRow[]> {
  const optimized = path.join(PLANS, 'docker-compose.loadbalanced.optimized.yml');
  const original = path.join(PLANS, 'docker-compose.loadbalanced.yml');
  const compose = (files: string[]) => ['docker', 'compose', ...files.flatMap((f) => ['--file', f]), 'config', '--quiet'];
  const cases: Array<{ what: string; command: string[]; baseline: string[] }> = [
    { what: '`arena-deploy --help`', command: ['node', BIN, '--help'], baseline: compose([optimized]) },
    { what: '`arena-deploy validate` (optimized plan)', command: ['node', BIN, 'validate', optimized], baseline: compose([optimized]) },
    { what: '`arena-deploy rollout --dry-run --offline` (original → optimized)', command: ['node', BIN, 'rollout', optimized, '--dry-run', '--offline', '--current', original, '--host-cpus', '16', '--host-memory', '64g'], baseline: compose([optimized]) },
  ];
  const rows: CliRow[] = [];
  for (const c of cases) {
    const mine: Array<{ wallMs: number; rssKiB: number; exitCode: number }> = [];
    const base: Array<{ wallMs: number; rssKiB: number; exitCode: number }> = [];
    // Alternating, after one warm-up of each (the page cache, not the measurement).
    await measure(c.command);
    await measure(c.baseline);
    for (let i = 0; i < opts.cliRuns; i += 1) {
      mine.push(await measure(c.command));
      base.push(await measure(c.baseline));
    }
    rows.push({
      what: c.what,
      command: c.command.map((a) => a.replace(root + path.sep, '')),
      wallMs: median(mine.map((m) => m.wallMs)),
      peakRssMiB: median(mine.map((m) => m.rssKiB / 1024)),
      exitCodes: [...new Set(mine.map((m) => m.exitCode))],
      baseline: { wallMs: median(base.map((m) => m.wallMs)), peakRssMiB: median(base.map((m) => m.rssKiB / 1024)) },
    });
    log(`cli: ${c.what}: ${rows[rows.length - 1]!.wallMs.toFixed(0)} ms`);
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------------------------
// The report

interface Machine {
  readonly date: string;
  readonly os: string;
  readonly kernel: string;
  readonly cpu: string;
  readonly cpus: number;
  readonly memoryGiB: number;
  readonly docker: string;
  readonly compose: string;
  readonly node: string;
  readonly loadAverageAtStart: number[];
}

async function machine(): Promise<Machine> {
  const osRelease = existsSync('/etc/os-release') ? (/PRETTY_NAME="([^"]+)"/.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? os.type()) : os.type();
  return {
    date: new Date().toISOString(),
    os: osRelease,
    kernel: os.release(),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cpus: os.cpus().length,
    memoryGiB: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    docker: (await docker(['version', '--format', '{{.Server.Version}}'])).stdout.trim(),
    compose: (await docker(['compose', 'version', '--short'])).stdout.trim(),
    node: process.version,
    loadAverageAtStart: os.loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

interface MethodSummary {
  readonly method: Method;
  readonly runs: number;
  readonly failedRuns: number;
  readonly totalMs: number;
  readonly toFirstAnswerMs: number | undefined;
  readonly overheadPerServiceMs: number | undefined;
  /** Of that overhead, the drain and the put-back (per service). */
  readonly drainPerServiceMs: number | undefined;
  readonly lagP95Ms: number | undefined;
  readonly lagMedianMs: number | undefined;
  readonly failedRequests: { median: number; max: number };
  readonly requests: number;
}

function summarize(method: Method, runs: readonly RunResult[]): MethodSummary | undefined {
  if (runs.length === 0) return undefined;
  const firsts = runs.flatMap((r) => r.services.map((s) => s.toFirstAnswerMs)).filter((x): x is number => x !== undefined);
  const lags = runs.flatMap((r) => r.services.map((s) => s.lagMs)).filter((x): x is number => x !== undefined);
  const overheads = method === 'arena-deploy'
    ? runs
        .filter((r) => r.services.every((s) => s.toFirstAnswerMs !== undefined))
        .map((r) => (r.totalMs - r.services.reduce((a, s) => a + (s.toFirstAnswerMs as number), 0) - r.waitsMs) / r.services.length)
    : [];
  return {
    method,
    runs: runs.length,
    failedRuns: runs.filter((r) => !r.ok).length,
    totalMs: median(runs.map((r) => r.totalMs)),
    toFirstAnswerMs: firsts.length ? median(firsts) : undefined,
    overheadPerServiceMs: overheads.length ? median(overheads) : undefined,
    drainPerServiceMs: method === 'arena-deploy' && runs.some((r) => r.drainMs !== undefined) ? median(runs.map((r) => (r.drainMs ?? 0) / WEB.length)) : undefined,
    lagP95Ms: lags.length ? percentile(lags, 95) : undefined,
    lagMedianMs: lags.length ? median(lags) : undefined,
    failedRequests: { median: median(runs.map((r) => r.load.failed)), max: Math.max(...runs.map((r) => r.load.failed)) },
    requests: median(runs.map((r) => r.load.requests)),
  };
}

const s1 = (ms: number | undefined) => (ms === undefined || Number.isNaN(ms) ? 'n/a' : `${(ms / 1000).toFixed(1)} s`);
const ms0 = (ms: number | undefined) => (ms === undefined || Number.isNaN(ms) ? 'n/a' : `${Math.round(ms)} ms`);
const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined || !b ? 'n/a' : `${(a / b).toFixed(2)}×`);

const LABEL: Record<Method, string> = {
  'arena-deploy': '`arena-deploy rollout` (drain, probe, 5 s monitor)',
  'guide-loop': "the guide's loop (`up -d --no-deps web-$i; sleep 30`)",
  'compose-up': '`docker compose up -d` (all at once)',
  swarm: 'Swarm `service update --update-parallelism 1 --update-failure-action rollback` (5 s monitor)',
};

function markdown(m: Machine, opts: Options, summaries: MethodSummary[], cli: CliRow[], runs: RunResult[], skipped: string[]): string {
  const out: string[] = [];
  out.push(`Ran ${m.date.slice(0, 16).replace('T', ' ')} UTC on ${m.os}, kernel ${m.kernel}, ${m.cpus} × ${m.cpu}, ${m.memoryGiB} GiB; Docker ${m.docker}, compose ${m.compose}, Node ${m.node}; load average at start ${m.loadAverageAtStart.join(' / ')}.`);
  out.push('');
  const arena = summaries.find((s) => s.method === 'arena-deploy');
  const swarm = summaries.find((s) => s.method === 'swarm');
  if (summaries.length) {
    out.push(`### Rolling 6 web services to a new revision under ${opts.rate} requests/s through nginx (median of ${opts.runs} runs each)`);
    out.push('');
    out.push('The optimized twin (6 × gunicorn 4 workers × 4 threads, nginx, redis) with the real plans\' health check (`curl -f --max-time 25 …/health/`, interval 30 s, timeout 30 s, 3 retries, start period 60 s); every other request is a 0.4 s `/slow/`.');
    out.push('');
    out.push('| method | total | vs arena-deploy | recreate → first 200 on /health/ (median per service) | overhead per service | lag first 200 → "healthy" (median / p95) | failed requests (median / max) | requests | failed runs |');
    out.push('|---|---|---|---|---|---|---|---|---|');
    for (const s of summaries) {
      out.push(`| ${LABEL[s.method]} | ${s1(s.totalMs)} | ${s.method === 'arena-deploy' ? '1.00×' : ratio(s.totalMs, arena?.totalMs)} | ${s.method === 'swarm' ? 'n/a (replicas have no port of their own)' : s1(s.toFirstAnswerMs)} | ${s.method === 'arena-deploy' ? `${ms0(s.overheadPerServiceMs)}${s.drainPerServiceMs ? ` (drain + put-back ${ms0(s.drainPerServiceMs)})` : ''}` : 'n/a'} | ${s.method === 'arena-deploy' ? `${ms0(s.lagMedianMs)} / ${ms0(s.lagP95Ms)}` : 'n/a'} | ${s.failedRequests.median} / ${s.failedRequests.max} | ${s.requests} | ${s.failedRuns} |`);
    }
    out.push('');
    out.push('Overhead per service: (total − Σ recreate → first 200 − the monitor windows) / 6 — the tool\'s own time: start-up, validation, backup, the drain and its two nginx reloads, waits, verification. Lag: the tool\'s `healthy` event minus the bench\'s own first 200 (polled every 20 ms); below 0 when the tool\'s probe got its answer first. Failed requests: non-2xx answers, timeouts and connection errors, the last counted per attempt as autocannon counts them (a refused connect tried again counts again), so they can outnumber the requests answered.');
    out.push('');
  }
  if (cli.length) {
    out.push(`### The CLI (median of ${opts.cliRuns} runs; peak RSS by GNU time)`);
    out.push('');
    out.push('| command | wall | peak RSS | `docker compose config --quiet` on the same plan | wall ratio | RSS ratio | exit |');
    out.push('|---|---|---|---|---|---|---|');
    for (const c of cli) {
      out.push(`| ${c.what} | ${ms0(c.wallMs)} | ${c.peakRssMiB.toFixed(0)} MiB | ${ms0(c.baseline.wallMs)}, ${c.baseline.peakRssMiB.toFixed(0)} MiB | ${ratio(c.wallMs, c.baseline.wallMs)} | ${ratio(c.peakRssMiB, c.baseline.peakRssMiB)} | ${c.exitCodes.join(', ')} |`);
    }
    out.push('');
  }
  out.push('### Targets');
  out.push('');
  out.push('| target | measured | met |');
  out.push('|---|---|---|');
  const row = (t: string, v: string, met: boolean | undefined) => out.push(`| ${t} | ${v} | ${met === undefined ? 'not measured' : met ? 'yes' : '**no**'} |`);
  row('overhead ≤ 0.5 s per service', ms0(arena?.overheadPerServiceMs), arena?.overheadPerServiceMs === undefined ? undefined : arena.overheadPerServiceMs <= 500);
  row('lag first 200 → "healthy" ≤ 250 ms at p95', ms0(arena?.lagP95Ms), arena?.lagP95Ms === undefined ? undefined : arena.lagP95Ms <= 250);
  row('total ≤ 0.8 × Swarm\'s', ratio(arena?.totalMs, swarm?.totalMs), arena && swarm ? arena.totalMs <= 0.8 * swarm.totalMs : undefined);
  row('0 failed requests (arena-deploy, every run)', arena ? String(arena.failedRequests.max) : 'n/a', arena ? arena.failedRequests.max === 0 : undefined);
  const help = cli.find((c) => c.what.includes('--help'));
  row('`--help` ≤ 200 ms', ms0(help?.wallMs), help ? help.wallMs <= 200 : undefined);
  const rss = cli.length ? Math.max(...cli.map((c) => c.peakRssMiB)) : undefined;
  row('peak RSS ≤ 100 MiB (largest of the CLI rows)', rss === undefined ? 'n/a' : `${rss.toFixed(0)} MiB`, rss === undefined ? undefined : rss <= 100);
  out.push('');
  const notes = runs.filter((r) => r.note && (!r.ok || r.method === 'compose-up'));
  if (notes.length || skipped.length) {
    for (const r of notes) out.push(`- ${r.method} run ${r.run}: ${r.note}`);
    for (const s of skipped) out.push(`- not run: ${s}`);
    out.push('');
  }
  return out.join('\n');
}

function lastLines(text: string, n: number): string {
  return text.trim().split('\n').slice(-n).join(' / ').slice(0, 400);
}

// ---------------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const ping = await docker(['info', '--format', '{{.ServerVersion}}'], { reject: false });
  if (ping.exitCode !== 0) throw new BenchError('no Docker engine answers: start one (sudo bash scripts/start-engine.sh) and run the bench again');
  for (const image of ['arena-deploy/backend:fixture', 'arena-deploy/nginx:fixture', 'arena-deploy/redis:fixture']) {
    if ((await docker(['image', 'inspect', image], { reject: false })).exitCode !== 0) throw new BenchError(`the fixture image ${image} is missing: build it with npm run fixtures`);
  }
  if (!existsSync('/usr/bin/time')) throw new BenchError('GNU time (/usr/bin/time) is missing, which measures peak RSS: install it (apt-get install time, or scripts/install-prereqs.sh)');
  const m = await machine();
  if (m.loadAverageAtStart[0]! > m.cpus * 0.5) log(`the machine is not idle (load average ${m.loadAverageAtStart[0]} on ${m.cpus} CPUs): figures will be slower and noisier`);
  const id = randomBytes(3).toString('hex');
  const runs: RunResult[] = [];
  const skipped: string[] = [];
  let cli: CliRow[] = [];

  if (opts.only.has('cli')) cli = await benchCli(opts);

  if (opts.only.has('rollout')) {
    let fleet: Fleet | undefined;
    await guarded(async () => {
      if (fleet) await tearDownFleet(fleet);
      fleet = undefined;
    }, async () => {
      fleet = await setUpFleet(id, opts.prefix);
      // Interleaved, so that a slow moment of the machine does not fall on one method only.
      for (let run = 1; run <= opts.runs; run += 1) {
        for (const [method, fn] of ([['arena-deploy', runArena], ['guide-loop', runGuide], ['compose-up', runComposeUp]] as const).filter(([m]) => opts.methods.has(m))) {
          log(`run ${run}/${opts.runs}: ${method}`);
          const r = await fn(fleet as Fleet, opts, run);
          runs.push(r);
          log(`  ${method}: ${s1(r.totalMs)}, ${r.load.failed} failed of ${r.load.requests} requests${r.ok ? '' : `, FAILED: ${r.note}`}`);
        }
      }
    });
  }

  if (opts.only.has('swarm')) {
    try {
      // `docker swarm init` and `leave` rewire the engine's networking: on Docker 20.10 the embedded DNS of networks
      // that existed before stopped resolving service names (seen by two runs beside this bench). With containers of
      // others running, the Swarm section is not run unless asked for.
      const others = (await docker(['ps', '--quiet'])).stdout.split('\n').filter(Boolean);
      if (others.length > 0 && !opts.swarmBesideOthers) throw new BenchError(`${others.length} other container(s) run on this engine, and a swarm's init and leave were seen to break the name resolution of networks that already exist: stop them, or pass --swarm-beside-others`);
      await withoutLiveRestore(async () => {
        let swarm: SwarmFleet | undefined;
        let made = false;
        await guarded(async () => {
          if (made) await tearDownSwarm(swarm, id);
          made = false;
        }, async () => {
          made = true;
          swarm = await setUpSwarm(id, opts.swarmPrefix);
          for (let run = 1; run <= opts.runs; run += 1) {
            log(`run ${run}/${opts.runs}: swarm`);
            const r = await runSwarm(swarm as SwarmFleet, opts, run);
            runs.push(r);
            log(`  swarm: ${s1(r.totalMs)}, ${r.load.failed} failed of ${r.load.requests} requests${r.ok ? '' : `, FAILED: ${r.note}`}`);
          }
        });
      });
    } catch (err) {
      if (!(err instanceof BenchError)) throw err;
      skipped.push(`Swarm: ${err.message}`);
      log(`swarm not run: ${err.message}`);
    }
  }

  const summaries = (['arena-deploy', 'guide-loop', 'compose-up', 'swarm'] as const).map((meth) => summarize(meth, runs.filter((r) => r.method === meth))).filter((s): s is MethodSummary => s !== undefined);
  const md = markdown(m, opts, summaries, cli, runs, skipped);
  const results = path.join(root, 'bench', 'results');
  mkdirSync(results, { recursive: true });
  writeFileSync(path.join(results, 'latest.md'), md + '\n');
  writeFileSync(path.join(results, 'latest.json'), JSON.stringify({ machine: m, options: { ...opts, only: [...opts.only], methods: [...opts.methods] }, summaries, cli, runs, skipped }, null, 2) + '\n');
  process.stdout.write(md + '\n');
  log(`written: bench/results/latest.md and bench/results/latest.json`);
  if (opts.record) {
    const doc = path.join(root, 'docs', 'benchmarks.md');
    const text = readFileSync(doc, 'utf8');
    const begin = '<!-- bench:results:begin -->';
    const end = '<!-- bench:results:end -->';
    if (!text.includes(begin) || !text.includes(end)) throw new BenchError(`docs/benchmarks.md has no ${begin} … ${end} block to write into`);
    writeFileSync(doc, `${text.slice(0, text.indexOf(begin) + begin.length)}\n${md}\n${text.slice(text.indexOf(end))}`);
    log('recorded in docs/benchmarks.md');
  }
}

main().catch((err: unknown) => {
  if (err instanceof UsageError) {
    process.stderr.write(`bench: ${err.message}\n${USAGE}\n`);
    process.exit(2);
  }
  if (err instanceof BenchError) {
    process.stderr.write(`bench: ${err.message}\n`);
    process.exit(1);
  }
  process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
