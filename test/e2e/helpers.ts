/** Shared pieces of the end-to-end tests: a real engine, unique compose projects, the built CLI. */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll } from 'vitest';

export const root = path.resolve(import.meta.dirname, '..', '..');
export const twins = path.join(root, 'fixtures', 'compose', 'arena');
export const ORIGINAL = path.join(twins, 'docker-compose.loadbalanced.yml');
export const OPTIMIZED = path.join(twins, 'docker-compose.loadbalanced.optimized.yml');
export const NEVER_HEALTHY = path.join(twins, 'broken-never-healthy.yml');
export const FIXTURE_SECRET = 'fixture-secret-not-for-production';
/** Every project a test creates starts with this, so leftovers can be found. */
export const TEST_PROJECT_PREFIX = 'arena-test-';

const FIXTURE_IMAGES = ['arena-deploy/backend:fixture', 'arena-deploy/nginx:fixture', 'arena-deploy/redis:fixture'];

/** Fails with one sentence when there is no local engine or no fixture images: these tests never skip. */
export async function requireEngine(): Promise<void> {
  const host = process.env['DOCKER_HOST'];
  if (host && !host.startsWith('unix://') && process.env['ARENA_E2E_ALLOW_REMOTE'] !== '1') {
    throw new Error(`DOCKER_HOST is ${host}: the end-to-end tests create and remove containers and only run against a local engine (set ARENA_E2E_ALLOW_REMOTE=1 to allow it).`);
  }
  const info = await execa('docker', ['info', '--format', '{{.ServerVersion}}'], { reject: false });
  if (info.exitCode !== 0) {
    throw new Error('No Docker engine answers: start one (as root: bash scripts/start-engine.sh, after bash scripts/install-prereqs.sh), then npm run fixtures; npm run test:unit runs the tests that need no engine.');
  }
  const compose = await execa('docker', ['compose', 'version'], { reject: false });
  if (compose.exitCode !== 0) throw new Error('docker compose v2 is missing: install it with bash scripts/install-prereqs.sh.');
  for (const image of FIXTURE_IMAGES) {
    const r = await execa('docker', ['image', 'inspect', image], { reject: false });
    if (r.exitCode !== 0) throw new Error(`The fixture image ${image} is missing: build the fixtures with npm run fixtures.`);
  }
}

/** A compose project name no one else uses. */
export function uniqueProject(): string {
  return `${TEST_PROJECT_PREFIX}${randomBytes(4).toString('hex')}`;
}

const tempDirs: string[] = [];
// Registered on the root suite of each test file that imports this module: its folders go when the file ends.
afterAll(() => {
  for (const d of tempDirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A fresh state folder (backups, locks) for one test, removed when the tests end. */
export function tempStateDir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'arena-deploy-test-'));
  tempDirs.push(dir);
  return dir;
}

/** The environment of one test's fleet: its own port prefix on 127.0.0.1. */
export function fleetEnv(portPrefix: number, extra: Record<string, string> = {}): Record<string, string> {
  return { ...(process.env as Record<string, string>), ARENA_PORT_PREFIX: String(portPrefix), CI: 'true', ...extra };
}

/** Brings up a plan as a project and waits until it is healthy, as an operator would with compose itself. */
export async function composeUp(project: string, file: string, env: Record<string, string>): Promise<void> {
  await execa('docker', ['compose', '--project-name', project, '--file', file, 'up', '--detach', '--wait', '--wait-timeout', '300'], { env, stdin: 'ignore' });
}

/** Removes everything of a project (containers, network, volumes). */
export async function composeDown(project: string): Promise<void> {
  await execa('docker', ['compose', '--project-name', project, 'down', '--volumes', '--remove-orphans', '--timeout', '5'], { reject: false, stdin: 'ignore' });
}

/** One container of a project, as `docker inspect` says. */
export interface Inspected {
  Id: string;
  Name: string;
  State: { Status: string; Health?: { Status: string } };
  Config: { Cmd: string[]; Env: string[]; Labels: Record<string, string>; Healthcheck?: { Test: string[]; Timeout: number; Interval: number; Retries: number } };
  HostConfig: { Memory: number; NanoCpus: number };
}

/** Service → inspected container, for every container of the project. */
export async function inspectProject(project: string): Promise<Map<string, Inspected>> {
  const ids = (await execa('docker', ['ps', '--all', '--quiet', '--filter', `label=com.docker.compose.project=${project}`])).stdout.split('\n').filter(Boolean);
  const out = new Map<string, Inspected>();
  if (ids.length === 0) return out;
  const list = JSON.parse((await execa('docker', ['inspect', ...ids])).stdout) as Inspected[];
  for (const c of list) out.set(c.Config.Labels['com.docker.compose.service'] as string, c);
  return out;
}

/**
 * The project's containers once Docker's health of each has settled (none "starting", 20 s at most): the tool may
 * call a container healthy by its health URL's answer before Docker ran a passing check (README: health probe), so
 * right after a run Docker can still say "starting" for up to an interval.
 */
export async function inspectSettled(project: string): Promise<Map<string, Inspected>> {
  const until = Date.now() + 20_000;
  for (;;) {
    const fleet = await inspectProject(project);
    if (Date.now() >= until || ![...fleet.values()].some((c) => c.State.Health?.Status === 'starting')) return fleet;
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** CLI runs still going: a test that timed out must not leave one changing a fleet while it is removed. */
const running = new Set<{ kill: (signal?: NodeJS.Signals) => boolean }>();

/** Runs the built CLI as a user would, without a terminal. */
export async function cli(args: readonly string[], env: Record<string, string>, timeoutMs = 15 * 60_000) {
  const child = execa('node', [path.join(root, 'bin', 'arena-deploy'), ...args], { env, reject: false, stdin: 'ignore', timeout: timeoutMs, cwd: root });
  running.add(child);
  try {
    const r = await child;
    return { exitCode: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
  } finally {
    running.delete(child);
  }
}

/** A CLI run in the background: its output so far, a wait for a line of it, a signal, its end. */
export interface BackgroundCli {
  readonly pid: number;
  /** stderr so far. */
  stderr(): string;
  /** Resolves when stderr matches, rejects after `timeoutMs` (or when the run ends without it). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
  kill(signal: NodeJS.Signals): void;
  done: Promise<{ exitCode: number | undefined; stdout: string; stderr: string }>;
}

/** Starts the built CLI without waiting for it, for tests that interrupt it. */
export function startCli(args: readonly string[], env: Record<string, string>, timeoutMs = 15 * 60_000): BackgroundCli {
  // No SIGKILL 5 s after a signal (execa's default): the tool's answer to SIGTERM is a rollback, which takes longer.
  const child = execa('node', [path.join(root, 'bin', 'arena-deploy'), ...args], { env, reject: false, stdin: 'ignore', timeout: timeoutMs, cwd: root, buffer: true, forceKillAfterDelay: false });
  running.add(child);
  let err = '';
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const done = child.then((r) => {
    running.delete(child);
    return { exitCode: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
  });
  return {
    pid: child.pid as number,
    stderr: () => err,
    waitFor: async (pattern, waitMs = 180_000) => {
      const until = Date.now() + waitMs;
      let ended = false;
      void done.then(() => {
        ended = true;
      });
      while (!pattern.test(err)) {
        if (ended) throw new Error(`the CLI ended before its stderr matched ${pattern}:\n${err}`);
        if (Date.now() > until) throw new Error(`stderr did not match ${pattern} within ${waitMs} ms:\n${err}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    kill: (signal) => {
      child.kill(signal);
    },
    done,
  };
}

/** Stops every CLI run still going (after a timed-out test). */
export function killRunningCli(): void {
  for (const child of running) child.kill('SIGKILL');
  running.clear();
}

/** GET on a port this test published on 127.0.0.1. */
export async function get(port: number, urlPath: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${urlPath}`, { signal: AbortSignal.timeout(10_000) });
  return { status: res.status, body: await res.text() };
}

/** A fleet for one describe block: a unique project brought up from `file` before its tests and removed after them. */
export function useFleet(file: string, portPrefix: number): { project: string; env: Record<string, string>; state: string } {
  const fleet = { project: uniqueProject(), env: fleetEnv(portPrefix), state: tempStateDir() };
  beforeAll(async () => {
    await requireEngine();
    await composeUp(fleet.project, file, fleet.env);
  }, 600_000);
  afterAll(async () => {
    killRunningCli();
    await composeDown(fleet.project);
  }, 120_000);
  return fleet;
}
