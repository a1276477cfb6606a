/**
 * Riding out an engine that stops answering for a while (dockerd restarted, a socket blip): engine and compose calls are
 * retried with backoff (p-retry) for a bounded time, transient errors only; then the last error stands, as
 * EngineUnreachableError (exit 4). Every call retried here is idempotent: reads, stop/remove of one container, and
 * compose's `up`, which converges to the same result when run again.
 */
import pRetry from 'p-retry';
import { CommandFailedError, EngineUnreachableError } from '../errors.js';
import { formatElapsed } from '../plan/units.js';
import type { ComposeClient } from './compose-client.js';
import type { ComposeTarget } from './compose-commands.js';
import type { EngineClient } from './engine-client.js';

/** How long and how to say it. */
export interface RetryPolicy {
  /** Total time a call keeps being retried (0: no retries). */
  readonly maxMs: number;
  /** Where the engine is, for messages. */
  readonly endpoint: string;
  /** Called once when an outage starts and once when the engine answers again. */
  readonly onOutage?: (event: { readonly state: 'lost' | 'back'; readonly reason: string }) => void;
  /** First and longest pause between attempts (250 ms and 4 s). */
  readonly minDelayMs?: number;
  readonly maxDelayMs?: number;
}

/** compose's sentences when it cannot talk to the engine (as opposed to the engine refusing the request). */
const COMPOSE_CONNECTION = /Cannot connect to the Docker daemon|Is the docker daemon running|error during connect|connection refused|connection reset by peer|broken pipe|unexpected EOF|dial unix .*: connect:/i;

/** Whether an error means the engine did not answer (worth retrying), not that it said no. */
export function isTransient(err: unknown): boolean {
  if (err instanceof EngineUnreachableError) return true;
  if (err instanceof CommandFailedError) return err.exitCode !== undefined && COMPOSE_CONNECTION.test(err.stderr);
  return false;
}

function reasonOf(err: unknown): string {
  if (err instanceof CommandFailedError) return err.stderr.split('\n').map((l) => l.trim()).find((l) => COMPOSE_CONNECTION.test(l)) ?? err.firstStderrLine;
  const cause = (err as { cause?: { code?: string } }).cause;
  return cause?.code ?? (err instanceof Error ? err.message : String(err));
}

/** One outage tracker shared by the engine and compose wrappers, so "lost" and "back" are said once per outage. */
export class Outage {
  private since: number | undefined;
  private back = 0;
  constructor(private readonly policy: RetryPolicy) {}

  /** How many times the engine answered again after an outage. */
  get comebacks(): number {
    return this.back;
  }

  async run<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      const result = await pRetry(fn, {
        retries: Number.POSITIVE_INFINITY,
        factor: 2,
        minTimeout: this.policy.minDelayMs ?? 250,
        maxTimeout: this.policy.maxDelayMs ?? 4000,
        randomize: true,
        maxRetryTime: this.policy.maxMs,
        shouldRetry: ({ error }) => this.policy.maxMs > 0 && isTransient(error),
        onFailedAttempt: ({ error }) => {
          if (!isTransient(error) || this.policy.maxMs <= 0 || this.since !== undefined) return;
          this.since = Date.now();
          this.policy.onOutage?.({ state: 'lost', reason: `${what}: ${reasonOf(error)}` });
        },
      });
      if (this.since !== undefined) {
        const down = Date.now() - this.since;
        this.since = undefined;
        this.back += 1;
        this.policy.onOutage?.({ state: 'back', reason: `after ${formatElapsed(down)}` });
      }
      return result;
    } catch (err) {
      if (!isTransient(err) || this.policy.maxMs <= 0) throw err;
      throw new EngineUnreachableError(
        `The Docker engine at ${this.policy.endpoint} stopped answering (${what}: ${reasonOf(err)}) and did not come back within ${formatElapsed(this.policy.maxMs)}`,
        { cause: err },
      );
    }
  }
}

/** The same engine, its calls retried under the policy; the event stream is left to its reader (ProjectEvents resubscribes). */
export function retryingEngine(engine: EngineClient, policy: RetryPolicy | Outage): EngineClient {
  const o = policy instanceof Outage ? policy : new Outage(policy);
  return {
    ping: () => o.run('ping', () => engine.ping()),
    listProject: (p) => o.run('listing containers', () => engine.listProject(p)),
    inspect: (id) => o.run('inspecting a container', () => engine.inspect(id)),
    inspectRaw: (ids) => o.run('inspecting containers', () => engine.inspectRaw(ids)),
    imageExists: (ref) => o.run('looking up an image', () => engine.imageExists(ref)),
    logsTail: (id, n) => o.run('reading logs', () => engine.logsTail(id, n)),
    events: (p, signal, sinceMs) => engine.events(p, signal, sinceMs),
    memoryUsage: (id) => o.run('reading memory use', () => engine.memoryUsage(id)),
    resourceUsage: (id) => o.run('reading resource use', () => engine.resourceUsage(id)),
    stop: (id, t) => o.run('stopping a container', () => engine.stop(id, t)),
    remove: (id) => o.run('removing a container', () => engine.remove(id)),
    exec: (id, argv) => o.run('running a command in a container', () => engine.exec(id, argv)),
    ...(engine.readHostFile ? { readHostFile: (image: string, p: string) => o.run('reading a file on the engine host', () => (engine.readHostFile as NonNullable<EngineClient['readHostFile']>)(image, p)) } : {}),
  };
}

/** The same compose, its commands retried when compose could not reach the engine. */
export function retryingCompose(compose: ComposeClient, policy: RetryPolicy | Outage): ComposeClient {
  const o = policy instanceof Outage ? policy : new Outage(policy);
  return {
    version: () => compose.version(),
    validate: (t: ComposeTarget) => o.run('docker compose config', () => compose.validate(t)),
    pendingChanges: (t, s) => o.run('docker compose up --dry-run', () => compose.pendingChanges(t, s)),
    recreate: (t, s, signal) => o.run('docker compose up', () => compose.recreate(t, s, signal)),
    upAll: (t, opts) => o.run('docker compose up', () => compose.upAll(t, opts)),
    down: (p) => o.run('docker compose down', () => compose.down(p)),
  };
}
