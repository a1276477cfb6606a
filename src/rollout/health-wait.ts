/** Waiting for a container to be healthy and watching it afterwards: engine events first, polling as the fallback. */
import { CancelledError, HealthCheckError } from '../errors.js';
import type { ContainerDetails, EngineClient, EngineEvent } from '../engine/engine-client.js';
import { formatElapsed } from '../plan/units.js';
import { probeTargetFor, probeUntilOk, type ProbeBackoff, type ProbeTarget } from './port-probe.js';

/** The clock and sleep a wait uses; injectable so tests take milliseconds. */
export interface Clock {
  now(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** Real time. */
export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        signal?.removeEventListener('abort', done);
        clearTimeout(timer);
        resolve();
      }
      signal?.addEventListener('abort', done, { once: true });
    }),
};

/** Collects a project's container events for the whole rollout so none is missed between `up` and a wait. */
export class ProjectEvents {
  private readonly seen: EngineEvent[] = [];
  private wake: Array<() => void> = [];
  private readonly controller = new AbortController();
  private failed = false;

  private readonly keys = new Set<string>();

  /**
   * Subscribes now; events are kept until close(). When the stream ends or breaks (the engine restarted), it
   * subscribes again from the last event's time, with a growing pause; polling covers the gap meanwhile.
   */
  constructor(engine: EngineClient, project: string, retryDelayMs = 500) {
    void (async () => {
      let since: number | undefined;
      let pause = retryDelayMs;
      while (!this.controller.signal.aborted) {
        try {
          for await (const e of engine.events(project, this.controller.signal, since)) {
            pause = retryDelayMs;
            this.failed = false;
            since = e.timeMs || since;
            // A resubscription replays from `since`: keep each event once.
            const key = `${e.timeMs}|${e.containerId}|${e.action}`;
            if (this.keys.has(key)) continue;
            this.keys.add(key);
            this.seen.push(e);
            this.notify();
          }
        } catch {
          this.failed = true;
        }
        if (this.controller.signal.aborted) break;
        this.failed = true;
        since ??= Date.now() - 1000;
        await new Promise((r) => setTimeout(r, pause).unref());
        pause = Math.min(pause * 2, 5000);
      }
    })();
  }

  /** Whether the event stream broke (the waits then rely on polling). */
  get degraded(): boolean {
    return this.failed;
  }

  /** Events for one container from position `from` on. */
  since(containerId: string, from: number): EngineEvent[] {
    return this.seen.slice(from).filter((e) => e.containerId === containerId);
  }

  /** The container's last die event from position `from` on: its exit code is the one inspect reports 0 for once it restarted. */
  lastDie(containerId: string, from: number): EngineEvent | undefined {
    return this.since(containerId, from).filter((e) => e.action === 'die').at(-1);
  }

  /** The current position in the stream. */
  get position(): number {
    return this.seen.length;
  }

  /** Resolves at the next event or after `ms`. */
  next(ms: number, clock: Clock, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const ctl = new AbortController();
      let settled = false;
      const done = () => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener('abort', done);
        ctl.abort();
        resolve();
      };
      // An aborted signal never fires its abort event again: return at once.
      if (signal?.aborted) {
        resolve();
        return;
      }
      this.wake.push(done);
      signal?.addEventListener('abort', done, { once: true });
      void clock.sleep(ms, ctl.signal).then(done);
    });
  }

  /** Wakes every pending next() now (a probe answered). */
  wakeUp(): void {
    this.notify();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = [];
    for (const f of w) f();
  }

  close(): void {
    this.controller.abort();
    this.notify();
  }
}

/** What to wait for. */
export interface WaitOptions {
  readonly service: string;
  readonly containerId: string;
  readonly waitFor: 'healthy' | 'running';
  readonly deadlineMs: number;
  readonly pollMs?: number;
  readonly signal?: AbortSignal | undefined;
  readonly onStatus?: (text: string) => void;
  /** Whether the engine restarted since the container was started: its health checks then no longer run. */
  readonly engineRestarted?: () => boolean;
  /**
   * Probe the health check's URL through the published port too (the local engine only): the first answer below 400
   * counts as healthy, without waiting up to a whole health-check interval for Docker's status.
   */
  readonly probe?: boolean;
  readonly probeBackoff?: ProbeBackoff;
  /** Said once the container counts as healthy: by the probe's answer (with its URL) or by Docker's health status. */
  readonly onHealthy?: (via: 'probe' | 'docker', url?: string) => void;
}

/**
 * The engine restarted while the container was starting. Docker (20.10, with live-restore) does not resume the health
 * checks of the containers it restores, so "starting" would never change: the caller recreates the container.
 */
export class HealthFrozenError extends Error {
  constructor(readonly service: string) {
    super(`the engine restarted while ${service} was starting, and Docker does not resume the health checks of containers it restores`);
    this.name = 'HealthFrozenError';
  }
}

/** Waits until the container is healthy (or running, without a health check); returns the time it took. */
export async function waitForHealthy(engine: EngineClient, events: ProjectEvents, clock: Clock, opts: WaitOptions): Promise<number> {
  const probing = new AbortController();
  try {
    return await waitLoop(engine, events, clock, opts, probing);
  } finally {
    probing.abort();
  }
}

async function waitLoop(engine: EngineClient, events: ProjectEvents, clock: Clock, opts: WaitOptions, probing: AbortController): Promise<number> {
  const start = clock.now();
  const pollMs = opts.pollMs ?? 1000;
  let cursor = 0;
  let lastHealth = '';
  let probe: ProbeTarget | undefined;
  let answeredAt: number | undefined;
  const byDocker = () => {
    opts.onHealthy?.('docker');
    return clock.now() - start;
  };
  for (;;) {
    if (opts.signal?.aborted) throw new CancelledError(`Interrupted while waiting for ${opts.service} to become ${opts.waitFor}.`);
    const elapsed = clock.now() - start;
    // Events first: they say it the moment Docker knows. A failure anywhere in the batch wins over a "healthy" before
    // it (healthy, then a crash: not healthy).
    let healthyEvent = false;
    for (const e of events.since(opts.containerId, cursor)) {
      if (e.action === 'health_status: healthy' && opts.waitFor === 'healthy') healthyEvent = true;
      if (e.action === 'health_status: unhealthy') throw unhealthy(opts, clock.now() - start);
      if (e.action === 'oom') throw new HealthCheckError('oom', opts.service, clock.now() - start, `${opts.service} ran out of memory ${formatElapsed(clock.now() - start)} after it was started`);
      if (e.action === 'die') throw await whyDied(engine, opts, clock.now() - start, e.exitCode);
    }
    if (healthyEvent) return byDocker();
    cursor = events.position;
    // Then the engine's own view: covers a broken event stream and events from before the subscription.
    const d = await engine.inspect(opts.containerId);
    if (d.oomKilled) throw new HealthCheckError('oom', opts.service, clock.now() - start, `${opts.service} was killed for running out of memory (OOMKilled) ${formatElapsed(clock.now() - start)} after it was started`);
    // The container is new: any restart is a crash, also one already running again between two polls (an event
    // stream that broke missed its die). Inspect's code is 0 then; the die event's, when it came, is the one.
    if (d.restarting || d.restartCount > 0) {
      const code = events.lastDie(opts.containerId, 0)?.exitCode ?? (d.restarting || !d.running ? d.exitCode : undefined);
      const what = code === undefined ? 'was restarted' : `exited with code ${code}${exitNote(code)} and was restarted`;
      throw new HealthCheckError('restarted', opts.service, clock.now() - start, `${opts.service} ${what} by its restart policy (restart count ${d.restartCount}) ${formatElapsed(clock.now() - start)} after it was started: a crash loop`);
    }
    if (!d.running && d.state !== 'created') throw exited(opts, clock.now() - start, d.exitCode);
    if (opts.waitFor === 'running' && d.running) return clock.now() - start;
    if (opts.waitFor === 'healthy' && !d.hasHealthcheck && d.running) return clock.now() - start;
    if (d.health === 'healthy') return byDocker();
    if (d.health === 'unhealthy') throw unhealthy(opts, clock.now() - start);
    // Before the probe's answer: a container whose health checks the engine no longer runs must not be taken as
    // healthy by the probe alone; recreated, Docker watches it again (status, the monitor window, verification).
    if (opts.engineRestarted?.()) throw new HealthFrozenError(opts.service);
    // The container runs and nothing says it failed: an answer of the probe is as good as Docker's next check.
    if (answeredAt !== undefined && d.running && probe) {
      opts.onHealthy?.('probe', probe.url);
      return answeredAt - start;
    }
    if (opts.probe && opts.waitFor === 'healthy' && !probe && d.running) {
      probe = probeTargetFor(d.healthTest, d, d.healthTimeoutMs ?? 30_000);
      if (probe) {
        void probeUntilOk(probe, clock, probing.signal, opts.probeBackoff).then((at) => {
          if (at === undefined) return;
          answeredAt = at;
          events.wakeUp();
        });
      }
    }
    if (d.health !== lastHealth) {
      lastHealth = d.health;
      opts.onStatus?.(`health: ${d.health}`);
    }
    if (elapsed >= opts.deadlineMs) {
      throw new HealthCheckError('timeout', opts.service, elapsed, `${opts.service} was not ${opts.waitFor} within its deadline of ${formatElapsed(opts.deadlineMs)} (health still "${d.health}")`);
    }
    await events.next(Math.min(pollMs, Math.max(opts.deadlineMs - elapsed, 1)), clock, opts.signal);
  }
}

/** Watches a healthy container for `windowMs`: a die, an oom, a restart or a turn to unhealthy is a failure. */
export async function monitorContainer(
  engine: EngineClient,
  events: ProjectEvents,
  clock: Clock,
  opts: {
    service: string;
    containerId: string;
    windowMs: number;
    pollMs?: number;
    signal?: AbortSignal | undefined;
    /**
     * The container was created by this run (the rollout's case): every event of it and every restart since its start
     * count, also those between its wait and this window (the put-back into nginx, a replica's wait).
     */
    fresh?: boolean;
  },
): Promise<void> {
  const start = clock.now();
  // The position before the first inspect: an event that arrives while it runs is this window's.
  const cursor = opts.fresh ? 0 : events.position;
  const first = opts.fresh ? { restartCount: 0 } : await engine.inspect(opts.containerId);
  const tail = `during the ${formatElapsed(opts.windowMs)} monitor window`;
  const interrupted = () => new CancelledError(`Interrupted while monitoring ${opts.service}.`);
  const oomEvent = () => new HealthCheckError('oom', opts.service, clock.now() - start, `${opts.service} ran out of memory (an oom event) ${tail}`);
  const restarted = (t: number, d: ContainerDetails, code: number | undefined): HealthCheckError => {
    const count = `restart count ${first.restartCount} → ${d.restartCount}`;
    return new HealthCheckError('restarted', opts.service, t, code === undefined
      ? `${opts.service} restarted (${count}) ${tail}`
      : `${opts.service} exited with code ${code}${exitNote(code)} and was restarted by its restart policy (${count}) ${tail}: a crash loop`);
  };
  /**
   * The exit code a restarted container died with. While it waits to restart, inspect still has it; once the new run
   * started, inspect says 0 and the code is in the die event, which may trail the inspect that saw the restart.
   */
  const restartExit = async (d: ContainerDetails): Promise<number | undefined> => {
    const until = clock.now() + 2000;
    while (!d.restarting && !events.lastDie(opts.containerId, cursor) && !events.degraded && !opts.signal?.aborted && clock.now() < until) {
      await events.next(until - clock.now(), clock, opts.signal);
    }
    if (opts.signal?.aborted) throw interrupted();
    // The kernel's OOM kill is in the events only (cgroup v2 may leave OOMKilled false): it says more than exit 137.
    if (events.since(opts.containerId, cursor).some((e) => e.action === 'oom')) throw oomEvent();
    return events.lastDie(opts.containerId, cursor)?.exitCode ?? (d.restarting ? d.exitCode : undefined);
  };
  const check = async (d: ContainerDetails): Promise<void> => {
    const t = clock.now() - start;
    if (d.oomKilled) throw new HealthCheckError('oom', opts.service, t, `${opts.service} ran out of memory (OOMKilled) ${tail}`);
    if (d.restartCount > first.restartCount || d.restarting) throw restarted(t, d, await restartExit(d));
    if (!d.running) throw new HealthCheckError('exited', opts.service, t, `${opts.service} exited with code ${d.exitCode} ${tail}`);
    if (d.health === 'unhealthy') throw new HealthCheckError('unhealthy', opts.service, t, `${opts.service} turned unhealthy ${tail}`);
  };
  for (;;) {
    if (opts.signal?.aborted) throw interrupted();
    for (const e of events.since(opts.containerId, cursor)) {
      const t = clock.now() - start;
      if (e.action === 'oom') throw oomEvent();
      if (e.action === 'die') {
        const d = await engine.inspect(opts.containerId).catch(() => undefined);
        if (d?.oomKilled) throw new HealthCheckError('oom', opts.service, t, `${opts.service} ran out of memory (OOMKilled, exit code ${e.exitCode ?? d.exitCode}) ${tail}`);
        if (d && (d.restarting || d.restartCount > first.restartCount)) throw restarted(t, d, e.exitCode ?? (d.restarting ? d.exitCode : undefined));
        throw new HealthCheckError('exited', opts.service, t, `${opts.service} exited with code ${e.exitCode ?? 'unknown'}${exitNote(e.exitCode)} ${tail}`);
      }
      if (e.action === 'restart') throw new HealthCheckError('restarted', opts.service, t, `${opts.service} restarted ${tail}`);
      if (e.action === 'health_status: unhealthy') throw new HealthCheckError('unhealthy', opts.service, t, `${opts.service} turned unhealthy ${tail}`);
    }
    const elapsed = clock.now() - start;
    await check(await engine.inspect(opts.containerId));
    if (elapsed >= opts.windowMs) return;
    await events.next(Math.min(opts.pollMs ?? 1000, opts.windowMs - elapsed), clock, opts.signal);
  }
}

function unhealthy(opts: WaitOptions, elapsedMs: number): HealthCheckError {
  return new HealthCheckError('unhealthy', opts.service, elapsedMs, `${opts.service} became unhealthy ${formatElapsed(elapsedMs)} after it was started`);
}

function exited(opts: WaitOptions, elapsedMs: number, exitCode: number | undefined): HealthCheckError {
  return new HealthCheckError('exited', opts.service, elapsedMs, `${opts.service} exited with code ${exitCode ?? 'unknown'}${exitNote(exitCode)} ${formatElapsed(elapsedMs)} after it was started`);
}

/** Exit 137 is SIGKILL: an OOM kill only when the engine says so (OOMKilled); else a stop timeout or a kill from outside. */
function exitNote(exitCode: number | undefined): string {
  return exitCode === 137 ? ' (SIGKILL, not an OOM kill by the engine\'s account: a stop timeout or a kill from outside)' : '';
}

/** A `die` event, explained: out of memory, a crash loop under a restart policy, or a plain exit. */
async function whyDied(engine: EngineClient, opts: WaitOptions, elapsedMs: number, exitCode: number | undefined): Promise<HealthCheckError> {
  const d = await engine.inspect(opts.containerId).catch(() => undefined);
  if (d?.oomKilled) return new HealthCheckError('oom', opts.service, elapsedMs, `${opts.service} ran out of memory (OOMKilled, exit code ${exitCode ?? d.exitCode}) ${formatElapsed(elapsedMs)} after it was started`);
  if (d && (d.restarting || d.restartCount > 0 || d.running)) {
    return new HealthCheckError('restarted', opts.service, elapsedMs, `${opts.service} exited with code ${exitCode ?? d.exitCode}${exitNote(exitCode)} ${formatElapsed(elapsedMs)} after it was started and is being restarted by its restart policy (restart count ${d.restartCount}): a crash loop`);
  }
  return exited(opts, elapsedMs, exitCode);
}

/** Lines that say why a container failed: its health log's last probes, exit code, OOMKilled and its last log lines. */
export async function describeFailure(engine: EngineClient, containerId: string, redact: (s: string) => string): Promise<string[]> {
  const lines: string[] = [];
  try {
    const d = await engine.inspect(containerId);
    lines.push(`container ${d.name} (${d.id.slice(0, 12)}): state ${d.state}, exit code ${d.exitCode}, OOMKilled ${d.oomKilled}, restarts ${d.restartCount}${d.error ? `, error: ${d.error}` : ''}`);
    const probes = d.healthLog.slice(-3);
    if (probes.length) {
      lines.push('last health probes:');
      for (const p of probes) lines.push(`  ${p.start.slice(11, 23)} exit ${p.exitCode}: ${redact(lastLine(p.output)) || '(no output)'}`);
    }
  } catch (err) {
    lines.push(`(cannot inspect the container: ${(err as Error).message})`);
  }
  try {
    const logs = (await engine.logsTail(containerId, 20)).trimEnd();
    if (logs) {
      lines.push('last 20 log lines:');
      for (const l of logs.split('\n')) lines.push(`  ${redact(l)}`);
    }
  } catch {
    // The container may already be gone.
  }
  return lines;
}

/** The last line a probe printed (curl's progress meter comes before its error), at most 200 characters. */
function lastLine(output: string): string {
  const lines = output.split(/[\r\n]+/).map((l) => l.trim()).filter(Boolean);
  return (lines[lines.length - 1] ?? '').slice(0, 200);
}
