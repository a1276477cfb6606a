/** Health waits against a scripted engine: the kinds of failure a real engine cannot produce on demand, in milliseconds. */
import { describe, expect, it } from 'vitest';
import { HealthFrozenError, monitorContainer, ProjectEvents, waitForHealthy, type Clock } from '../../src/rollout/health-wait.js';
import type { ContainerDetails, EngineClient, EngineEvent } from '../../src/engine/engine-client.js';
import { CancelledError, HealthCheckError } from '../../src/errors.js';

/** A clock that advances only when waited on. */
function fakeClock(): Clock & { t: number } {
  const c = {
    t: 0,
    now: () => c.t,
    sleep: async (ms: number) => {
      c.t += ms;
    },
  };
  return c;
}

function details(over: Partial<ContainerDetails>): ContainerDetails {
  return {
    id: 'c1', name: 'p-web-1-1', project: 'p', service: 'web-1', number: 1, state: 'running', health: 'starting', image: 'img', configHash: 'h', configFiles: [], workingDir: '/',
    running: true, restarting: false, restartCount: 0, exitCode: 0, oomKilled: false, startedAt: '', error: '', healthLog: [], hasHealthcheck: true, memoryLimitBytes: 0, nanoCpus: 0, cmd: [],
    ...over,
  };
}

/** An engine whose inspect answers follow a script over time and whose events are given up front. */
function scripted(script: (t: number) => Partial<ContainerDetails>, clock: { t: number }, events: EngineEvent[] = []): EngineClient {
  const unused = () => {
    throw new Error('not used by this test');
  };
  return {
    ping: unused, listProject: unused, inspectRaw: unused, imageExists: unused, logsTail: unused, memoryUsage: unused, resourceUsage: unused, stop: unused, remove: unused,
    inspect: async () => details(script(clock.t)),
    async *events() {
      for (const e of events) yield e;
    },
  };
}

describe('waitForHealthy', () => {
  it('returns when Docker says healthy, with the time it took', async () => {
    const clock = fakeClock();
    const engine = scripted((t) => ({ health: t >= 3000 ? 'healthy' : 'starting' }), clock);
    const events = new ProjectEvents(engine, 'p');
    await expect(waitForHealthy(engine, events, clock, { service: 'web-1', containerId: 'c1', waitFor: 'healthy', deadlineMs: 10_000 })).resolves.toBe(3000);
  });

  it('tolerates a slow start up to the deadline, then fails with kind "timeout"', async () => {
    const clock = fakeClock();
    const engine = scripted(() => ({ health: 'starting' }), clock);
    const err = await waitForHealthy(engine, new ProjectEvents(engine, 'p'), clock, { service: 'web-1', containerId: 'c1', waitFor: 'healthy', deadlineMs: 5000 }).catch((e) => e);
    expect(err).toBeInstanceOf(HealthCheckError);
    expect(err).toMatchObject({ kind: 'timeout', message: 'web-1 was not healthy within its deadline of 5.0s (health still "starting")' });
  });

  it('stops waiting on a "starting" that cannot change once the engine restarted (its health checks no longer run)', async () => {
    const clock = fakeClock();
    const engine = scripted(() => ({ health: 'starting' }), clock);
    const err = await waitForHealthy(engine, new ProjectEvents(engine, 'p'), clock, { service: 'web-2', containerId: 'c1', waitFor: 'healthy', deadlineMs: 60_000, engineRestarted: () => clock.t >= 2000 }).catch((e) => e);
    expect(err).toBeInstanceOf(HealthFrozenError);
    expect(clock.t).toBeLessThan(4000);
  });

  it('fails at once with kind "unhealthy", not at the deadline', async () => {
    const clock = fakeClock();
    const engine = scripted((t) => ({ health: t >= 2000 ? 'unhealthy' : 'starting' }), clock);
    const err = await waitForHealthy(engine, new ProjectEvents(engine, 'p'), clock, { service: 'web-1', containerId: 'c1', waitFor: 'healthy', deadlineMs: 60_000 }).catch((e) => e);
    expect(err).toMatchObject({ kind: 'unhealthy', elapsedMs: 2000 });
  });

  it('reads an oom event as "out of memory", not as an exit code', async () => {
    const clock = fakeClock();
    const engine = scripted(() => ({ health: 'starting' }), clock, [{ action: 'oom', containerId: 'c1', service: 'web-1', exitCode: undefined, timeMs: 0 }]);
    const events = new ProjectEvents(engine, 'p');
    await new Promise((r) => setTimeout(r, 5));
    const err = await waitForHealthy(engine, events, clock, { service: 'web-1', containerId: 'c1', waitFor: 'healthy', deadlineMs: 60_000 }).catch((e) => e);
    expect(err).toMatchObject({ kind: 'oom' });
    expect(err.message).toMatch(/ran out of memory/);
  });

  it('sees a container that exited, with its exit code', async () => {
    const clock = fakeClock();
    const engine = scripted(() => ({ running: false, state: 'exited', exitCode: 3 }), clock);
    const err = await waitForHealthy(engine, new ProjectEvents(engine, 'p'), clock, { service: 'web-1', containerId: 'c1', waitFor: 'healthy', deadlineMs: 60_000 }).catch((e) => e);
    expect(err).toMatchObject({ kind: 'exited' });
    expect(err.message).toMatch(/^web-1 exited with code 3 /);
  });

  it('a die right after the healthy event, in the same batch of events, is a failure, not healthy', async () => {
    const clock = fakeClock();
    const engine = scripted(() => ({ health: 'starting' }), clock, [
      { action: 'health_status: healthy', containerId: 'c1', service: 'web-1', exitCode: undefined, timeMs: 1 },
      { action: 'die', containerId: 'c1', service: 'web-1', exitCode: 3, timeMs: 2 },
    ]);
    const events = new ProjectEvents(engine, 'p');
    await new Promise((r) => setTimeout(r, 10));
    const err = await waitForHealthy(engine, events, clock, { service: 'web-1', containerId: 'c1', waitFor: 'healthy', deadlineMs: 60_000 }).catch((e) => e);
    expect(err).toBeInstanceOf(HealthCheckError);
    expect(err.message).toMatch(/^web-1 exited with code 3 /);
  });

  it('without events (a broken stream), a restart that is already running again between two polls is a crash loop', async () => {
    const clock = fakeClock();
    const engine = scripted((t) => ({ health: 'starting', ...(t >= 2000 ? { restartCount: 1, exitCode: 0 } : {}) }), clock);
    const err = await waitForHealthy(engine, new ProjectEvents(engine, 'p'), clock, { service: 'web-1', containerId: 'c1', waitFor: 'healthy', deadlineMs: 60_000 }).catch((e) => e);
    expect(err).toMatchObject({ kind: 'restarted' });
    // Inspect's exit code is the new run's 0: none is named.
    expect(err.message).toBe('web-1 was restarted by its restart policy (restart count 1) 2.0s after it was started: a crash loop');
  });

  it('waits only for running when the plan has no health check', async () => {
    const clock = fakeClock();
    const engine = scripted(() => ({ health: 'none', hasHealthcheck: false }), clock);
    await expect(waitForHealthy(engine, new ProjectEvents(engine, 'p'), clock, { service: 'web-1', containerId: 'c1', waitFor: 'running', deadlineMs: 1000 })).resolves.toBe(0);
  });
});

describe('monitorContainer', () => {
  it('passes a container that stays up through the window', async () => {
    const clock = fakeClock();
    const engine = scripted(() => ({ health: 'healthy' }), clock);
    await expect(monitorContainer(engine, new ProjectEvents(engine, 'p'), clock, { service: 'web-1', containerId: 'c1', windowMs: 5000 })).resolves.toBeUndefined();
    expect(clock.t).toBe(5000);
  });

  it('fails a container whose restart count rises inside the window, even though it is healthy again', async () => {
    const clock = fakeClock();
    const engine = scripted((t) => ({ health: 'healthy', restartCount: t >= 2000 ? 1 : 0 }), clock);
    const err = await monitorContainer(engine, new ProjectEvents(engine, 'p'), clock, { service: 'web-1', containerId: 'c1', windowMs: 5000 }).catch((e) => e);
    expect(err).toMatchObject({ kind: 'restarted' });
    // No die event came: inspect's exit code is the new run's (0), so none is named.
    expect(err.message).toBe('web-1 restarted (restart count 0 → 1) during the 5.0s monitor window');
  });

  it('names the exit code of the die event that trails the inspect seeing the restart, not the new run\'s 0', async () => {
    // A clock whose waits let the event stream run (a macrotask) before time moves on.
    const c = { t: 0, now: () => c.t, sleep: async (ms: number) => { await new Promise((r) => setTimeout(r, 5)); c.t += ms; } };
    const base = scripted((t) => ({ health: 'healthy', restartCount: t >= 1000 ? 1 : 0, exitCode: 0 }), c);
    const engine: EngineClient = {
      ...base,
      async *events() {
        while (c.t < 1000) await new Promise((r) => setTimeout(r, 1));
        // Delivered while the monitor waits after it saw the restart count rise.
        await new Promise((r) => setTimeout(r, 1));
        yield { action: 'die', containerId: 'c1', service: 'web-1', exitCode: 3, timeMs: 1 };
      },
    };
    const err = await monitorContainer(engine, new ProjectEvents(engine, 'p'), c, { service: 'web-1', containerId: 'c1', windowMs: 30_000 }).catch((e) => e);
    expect(err).toMatchObject({ kind: 'restarted' });
    expect(err.message).toBe('web-1 exited with code 3 and was restarted by its restart policy (restart count 0 → 1) during the 30.0s monitor window: a crash loop');
  });

  it('names the exit code inspect still has while the container waits to restart, without waiting for an event', async () => {
    const clock = fakeClock();
    const engine = scripted((t) => ({ health: 'healthy', ...(t >= 1000 ? { restarting: true, running: false, restartCount: 1, exitCode: 3 } : {}) }), clock);
    const err = await monitorContainer(engine, new ProjectEvents(engine, 'p'), clock, { service: 'web-1', containerId: 'c1', windowMs: 30_000 }).catch((e) => e);
    expect(err.message).toBe('web-1 exited with code 3 and was restarted by its restart policy (restart count 0 → 1) during the 30.0s monitor window: a crash loop');
    expect(clock.t).toBe(1000);
  });

  it('an oom event that comes while it waits for the die event of a restart is an out-of-memory failure, not "exit 137"', async () => {
    const c = { t: 0, now: () => c.t, sleep: async (ms: number) => { await new Promise((r) => setTimeout(r, 5)); c.t += ms; } };
    const base = scripted((t) => ({ health: 'healthy', restartCount: t >= 1000 ? 1 : 0 }), c);
    const engine: EngineClient = {
      ...base,
      async *events() {
        while (c.t < 1000) await new Promise((r) => setTimeout(r, 1));
        await new Promise((r) => setTimeout(r, 1));
        yield { action: 'oom', containerId: 'c1', service: 'web-1', exitCode: undefined, timeMs: 1 };
        yield { action: 'die', containerId: 'c1', service: 'web-1', exitCode: 137, timeMs: 2 };
      },
    };
    const err = await monitorContainer(engine, new ProjectEvents(engine, 'p'), c, { service: 'web-1', containerId: 'c1', windowMs: 30_000 }).catch((e) => e);
    expect(err).toMatchObject({ kind: 'oom' });
    expect(err.message).not.toMatch(/137/);
  });

  it('an interrupt while it waits for the die event of a restart ends the monitor as interrupted, not as a failure', async () => {
    // Real time, so that the abort lands inside the wait (the restart is seen on the second inspect, at once).
    let inspects = 0;
    const clock: Clock = {
      now: () => Date.now(),
      sleep: (ms, signal) => new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ms);
        signal?.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
      }),
    };
    const base = scripted(() => ({ health: 'healthy', restartCount: inspects++ === 0 ? 0 : 1 }), { t: 0 });
    const engine: EngineClient = { ...base, async *events() { await new Promise(() => {}); } };
    const ctl = new AbortController();
    setTimeout(() => ctl.abort(), 50);
    const events = new ProjectEvents(engine, 'p');
    const err = await monitorContainer(engine, events, clock, { service: 'web-1', containerId: 'c1', windowMs: 30_000, pollMs: 10, signal: ctl.signal }).catch((e) => e);
    events.close();
    expect(err).toBeInstanceOf(CancelledError);
    expect(err.message).toBe('Interrupted while monitoring web-1.');
  });

  it('a container of this run (fresh) that crashed and restarted before the window began is a failure, with its die event\'s code', async () => {
    const clock = fakeClock();
    // Healthy and restarted already when the monitor starts (between its wait and the window: the put-back into nginx).
    const engine = scripted(() => ({ health: 'healthy', restartCount: 1, exitCode: 0 }), clock, [{ action: 'die', containerId: 'c1', service: 'web-1', exitCode: 3, timeMs: 1 }]);
    const events = new ProjectEvents(engine, 'p');
    await new Promise((r) => setTimeout(r, 10));
    const err = await monitorContainer(engine, events, clock, { service: 'web-1', containerId: 'c1', windowMs: 30_000, fresh: true }).catch((e) => e);
    expect(err).toMatchObject({ kind: 'restarted' });
    expect(err.message).toBe('web-1 exited with code 3 and was restarted by its restart policy (restart count 0 → 1) during the 30.0s monitor window: a crash loop');
  });

  it('fails on OOMKilled inside the window', async () => {
    const clock = fakeClock();
    const engine = scripted((t) => ({ health: 'healthy', oomKilled: t >= 1000 }), clock);
    await expect(monitorContainer(engine, new ProjectEvents(engine, 'p'), clock, { service: 'web-1', containerId: 'c1', windowMs: 5000 })).rejects.toMatchObject({ kind: 'oom' });
  });
});
