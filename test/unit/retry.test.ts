import { describe, expect, it } from 'vitest';
import { CommandFailedError, EngineUnreachableError, ValidationError } from '../../src/errors.js';
import { isTransient, Outage, retryingCompose, retryingEngine } from '../../src/engine/retry.js';
import type { ComposeClient } from '../../src/engine/compose-client.js';
import type { EngineClient, EngineInfo } from '../../src/engine/engine-client.js';

const INFO: EngineInfo = { endpoint: 'unix:///var/run/docker.sock', serverVersion: '20.10', ncpu: 2, memTotalBytes: 1 };
const lost = () => new EngineUnreachableError('Cannot reach the Docker engine at unix:///var/run/docker.sock (ECONNREFUSED)', { cause: Object.assign(new Error('connect'), { code: 'ECONNREFUSED' }) });

/** An engine whose ping fails `failures` times, then answers. */
function flaky(failures: number, error: () => Error = lost): { engine: EngineClient; calls: () => number } {
  let calls = 0;
  const unused = () => {
    throw new Error('not used');
  };
  const engine = {
    ping: async () => {
      calls += 1;
      if (calls <= failures) throw error();
      return INFO;
    },
    listProject: unused, inspect: unused, inspectRaw: unused, imageExists: unused, logsTail: unused, events: unused, memoryUsage: unused, resourceUsage: unused, stop: unused, remove: unused,
  } as unknown as EngineClient;
  return { engine, calls: () => calls };
}

describe('retrying engine calls', () => {
  it('tells a lost engine from a refusal: connection errors and compose\'s "Cannot connect" are transient, a rejected request is not', () => {
    expect(isTransient(lost())).toBe(true);
    expect(isTransient(new CommandFailedError(['docker', 'compose', 'up'], 1, 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?'))).toBe(true);
    expect(isTransient(new CommandFailedError(['docker', 'compose', 'up'], 1, 'Error response from daemon: No such image: arena:old'))).toBe(false);
    expect(isTransient(new ValidationError('bad plan'))).toBe(false);
  });

  it('retries through an outage, says "lost" once and "back" once, and returns the answer', async () => {
    const { engine, calls } = flaky(3);
    const said: string[] = [];
    const e = retryingEngine(engine, { maxMs: 5000, endpoint: INFO.endpoint, minDelayMs: 1, maxDelayMs: 5, onOutage: (o) => said.push(o.state) });
    await expect(e.ping()).resolves.toEqual(INFO);
    expect(calls()).toBe(4);
    expect(said).toEqual(['lost', 'back']);
  });

  it('gives up after the bound with one sentence naming the engine and the bound', async () => {
    const { engine } = flaky(Number.POSITIVE_INFINITY);
    const e = retryingEngine(engine, { maxMs: 200, endpoint: INFO.endpoint, minDelayMs: 10, maxDelayMs: 20 });
    await expect(e.ping()).rejects.toThrow(/^The Docker engine at unix:\/\/\/var\/run\/docker\.sock stopped answering \(ping: ECONNREFUSED\) and did not come back within 0\.2s$/);
  });

  it('does not retry what is not transient, nor anything with a bound of 0', async () => {
    const refused = flaky(1, () => new Error('404 no such container'));
    await expect(retryingEngine(refused.engine, { maxMs: 5000, endpoint: INFO.endpoint }).ping()).rejects.toThrow('404 no such container');
    expect(refused.calls()).toBe(1);
    const once = flaky(1);
    await expect(retryingEngine(once.engine, { maxMs: 0, endpoint: INFO.endpoint }).ping()).rejects.toBeInstanceOf(EngineUnreachableError);
    expect(once.calls()).toBe(1);
  });

  it('re-runs a compose command that could not reach the engine', async () => {
    let runs = 0;
    const compose = {
      recreate: async () => {
        runs += 1;
        if (runs < 3) throw new CommandFailedError(['docker', 'compose', 'up'], 1, 'error during connect: Get "http://%2Fvar%2Frun%2Fdocker.sock/v1.41/containers/json": dial unix /var/run/docker.sock: connect: no such file or directory');
      },
    } as unknown as ComposeClient;
    await retryingCompose(compose, { maxMs: 5000, endpoint: INFO.endpoint, minDelayMs: 1, maxDelayMs: 5 }).recreate({ project: 'p', files: ['/f.yml'], projectDirectory: '/' }, ['web-1']);
    expect(runs).toBe(3);
  });

  it('engine and compose share one outage: it is said once and counted once when both meet it at the same time', async () => {
    const { engine } = flaky(2);
    let runs = 0;
    const compose = {
      recreate: async () => {
        runs += 1;
        if (runs < 3) throw new CommandFailedError(['docker', 'compose', 'up'], 1, 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?');
      },
    } as unknown as ComposeClient;
    const said: string[] = [];
    const outage = new Outage({ maxMs: 5000, endpoint: INFO.endpoint, minDelayMs: 20, maxDelayMs: 40, onOutage: (o) => said.push(o.state) });
    await Promise.all([retryingEngine(engine, outage).ping(), retryingCompose(compose, outage).recreate({ project: 'p', files: ['/f.yml'], projectDirectory: '/' }, ['web-1'])]);
    expect(said).toEqual(['lost', 'back']);
    expect(outage.comebacks).toBe(1);
  });
});
