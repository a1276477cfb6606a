/** The health URL probe: which URL a health check gives, the backoff, and a wait that ends at the first answer. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { ContainerDetails, EngineClient, PublishedPort } from '../../src/engine/engine-client.js';
import { probeOnce, probeTargetFor, probeUntilOk } from '../../src/rollout/port-probe.js';
import { HealthFrozenError, ProjectEvents, systemClock, waitForHealthy } from '../../src/rollout/health-wait.js';
import { HealthCheckError } from '../../src/errors.js';

const published = (hostPort: number, hostIp = '127.0.0.1', containerPort = 8000): { publishedPorts: PublishedPort[] } => ({ publishedPorts: [{ containerPort, protocol: 'tcp', hostIp, hostPort }] });
const GUIDE = ['CMD', 'curl', '-f', '--max-time', '25', 'http://localhost:8000/health/'];

describe('probeTargetFor', () => {
  it("takes the guide's curl check to the published port, with curl's --max-time as the per-request bound", () => {
    expect(probeTargetFor(GUIDE, published(8001), 30_000)).toEqual({ url: 'http://127.0.0.1:8001/health/', timeoutMs: 25_000, host: 'localhost:8000', okBelow: 400 });
  });

  it('reads CMD-SHELL and wget checks, a port published on every address, and an implicit port 80 with a query', () => {
    expect(probeTargetFor(['CMD-SHELL', 'curl -fsS http://127.0.0.1:8000/health/ || exit 1'], published(5901, '0.0.0.0'), 10_000)).toEqual({ url: 'http://127.0.0.1:5901/health/', timeoutMs: 10_000, host: '127.0.0.1:8000', okBelow: 400 });
    expect(probeTargetFor(['CMD-SHELL', "curl -f --max-time 5 'http://localhost:8000/health/'"], published(5901), 10_000)).toEqual({ url: 'http://127.0.0.1:5901/health/', timeoutMs: 5000, host: 'localhost:8000', okBelow: 400 });
    expect(probeTargetFor(['CMD', 'wget', '-q', '-T', '5', '-O-', 'http://localhost/ping?deep=1'], published(6080, '', 80), 30_000)).toEqual({ url: 'http://127.0.0.1:6080/ping?deep=1', timeoutMs: 5000, host: 'localhost', okBelow: 300 });
  });

  it("caps the per-request bound at the health check's own timeout, and keeps a bound below a second", () => {
    expect(probeTargetFor(GUIDE, published(8001), 10_000)?.timeoutMs).toBe(10_000);
    expect(probeTargetFor(['CMD', 'curl', '-f', '--max-time', '0.5', 'http://localhost:8000/health/'], published(8001), 30_000)?.timeoutMs).toBe(500);
  });

  it('asks a port published on IPv6 only on ::1, and refuses a URL with credentials', () => {
    expect(probeTargetFor(GUIDE, published(7411, '::'), 30_000)?.url).toBe('http://[::1]:7411/health/');
    expect(probeTargetFor(['CMD', 'curl', '-f', 'http://admin:pw@localhost:8000/health/'], published(8001), 30_000)).toBeUndefined();
  });

  it('gives nothing to probe when the check is not an http request to the container, or its port is not reachable here', () => {
    expect(probeTargetFor(['CMD', 'python', '-c', 'import urllib'], published(8001), 30_000)).toBeUndefined();
    expect(probeTargetFor(['CMD', 'curl', '-f', 'https://localhost:8000/health/'], published(8001), 30_000)).toBeUndefined();
    expect(probeTargetFor(['CMD', 'curl', '-f', 'http://db.internal:8000/health/'], published(8001), 30_000)).toBeUndefined();
    expect(probeTargetFor(GUIDE, { publishedPorts: [] }, 30_000)).toBeUndefined();
    expect(probeTargetFor(GUIDE, published(8001, '10.1.2.3'), 30_000)).toBeUndefined();
    expect(probeTargetFor(GUIDE, published(8001, '127.0.0.1', 9000), 30_000)).toBeUndefined();
    expect(probeTargetFor(['NONE'], published(8001), 30_000)).toBeUndefined();
    // More to the check than the request: the URL's answer alone is not what Docker checks.
    expect(probeTargetFor(['CMD-SHELL', 'curl -f http://localhost:8000/health/ && test -f /dev/shm/heartbeat'], published(8001), 30_000)).toBeUndefined();
    expect(probeTargetFor(['CMD-SHELL', 'curl -fs http://localhost:8000/health/ | grep -q ok'], published(8001), 30_000)).toBeUndefined();
    expect(probeTargetFor(['CMD-SHELL', 'curl -f http://localhost:$PORT/health/'], published(8001), 30_000)).toBeUndefined();
    // Options that change what is asked, or a wrapper before the command.
    expect(probeTargetFor(['CMD', 'curl', '-f', '-H', 'X-Deep-Check: 1', 'http://localhost:8000/health/'], published(8001), 30_000)).toBeUndefined();
    expect(probeTargetFor(['CMD', 'curl', '-fk', 'http://localhost:8000/health/'], published(8001), 30_000)).toBeUndefined();
    expect(probeTargetFor(['CMD', 'curl', '-X', 'POST', 'http://localhost:8000/health/'], published(8001), 30_000)).toBeUndefined();
    expect(probeTargetFor(['CMD', 'timeout', '5', 'curl', 'http://localhost:8000/health/'], published(8001), 30_000)).toBeUndefined();
    // wget's --spider sends HEAD, which a GET-only route refuses while a GET succeeds.
    expect(probeTargetFor(['CMD', 'wget', '-q', '--spider', 'http://localhost:8000/health/'], published(8001), 30_000)).toBeUndefined();
    expect(probeTargetFor(['CMD', '/usr/bin/curl', '-f', '--max-time=4', '-o', '/dev/null', 'http://localhost:8000/health/'], published(8001), 30_000)).toEqual({ url: 'http://127.0.0.1:8001/health/', timeoutMs: 4000, host: 'localhost:8000', okBelow: 400 });
    expect(probeTargetFor(undefined, published(8001), 30_000)).toBeUndefined();
  });
});

describe('probeUntilOk', () => {
  it('backs off from 50 ms by 1.5 up to 200 ms between failed requests, one request at a time', async () => {
    const pauses: number[] = [];
    let t = 0;
    const clock = { now: () => t, sleep: async (ms: number) => void (pauses.push(ms), (t += ms)) };
    let calls = 0;
    const at = await probeUntilOk({ url: 'http://x/', timeoutMs: 1000, host: 'x', okBelow: 400 }, clock, new AbortController().signal, undefined, async () => ++calls > 12);
    expect(calls).toBe(13);
    expect(pauses.map((p) => Math.round(p))).toEqual([50, 75, 113, 169, 200, 200, 200, 200, 200, 200, 200, 200]);
    expect(at).toBe(t);
  });

  it('ends without an answer when aborted', async () => {
    const ctl = new AbortController();
    const clock = { now: () => 0, sleep: async () => void ctl.abort() };
    await expect(probeUntilOk({ url: 'http://x/', timeoutMs: 1000, host: 'x', okBelow: 400 }, clock, ctl.signal, undefined, async () => false)).resolves.toBeUndefined();
  });
});

describe('probeOnce and a health wait that ends at the first answer (a real http server on 127.0.0.1)', () => {
  let server: http.Server | undefined;
  afterEach(async () => {
    await new Promise((r) => (server ? server.close(r) : r(undefined)));
    server = undefined;
  });
  const listen = async (handler: http.RequestListener): Promise<number> => {
    server = http.createServer(handler);
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    return (server.address() as AddressInfo).port;
  };

  it("counts what curl -f counts: below 400 is an answer, 500 and a refused connection and a timeout are not", async () => {
    let status = 200;
    let delay = 0;
    const port = await listen((_req, res) => void setTimeout(() => res.writeHead(status).end('ok'), delay));
    const curl = (timeoutMs: number) => ({ url: `http://127.0.0.1:${port}/health/`, timeoutMs, host: 'localhost:8000', okBelow: 400 });
    expect(await probeOnce(curl(2000))).toBe(true);
    status = 302;
    expect(await probeOnce(curl(2000))).toBe(true);
    status = 500;
    expect(await probeOnce(curl(2000))).toBe(false);
    status = 200;
    delay = 1500;
    expect(await probeOnce(curl(300))).toBe(false);
    await new Promise((r) => server!.close(r));
    server = undefined;
    expect(await probeOnce(curl(2000))).toBe(false);
  });

  it("a wget check's redirect is not an answer (wget follows it, the probe does not), and the Host is the check's own", async () => {
    const hosts: string[] = [];
    let status = 302;
    const port = await listen((req, res) => {
      hosts.push(req.headers.host ?? '');
      res.writeHead(status, status === 302 ? { location: 'https://elsewhere/' } : {}).end();
    });
    const target = probeTargetFor(['CMD', 'wget', '-q', '-O-', 'http://localhost:8000/health/'], published(port), 30_000);
    expect(target).toMatchObject({ okBelow: 300, host: 'localhost:8000' });
    expect(await probeOnce(target!)).toBe(false);
    status = 200;
    expect(await probeOnce(target!)).toBe(true);
    // An app that checks the Host (Django's ALLOWED_HOSTS) sees what Docker's check sends, not 127.0.0.1:PORT.
    expect(hosts).toEqual(['localhost:8000', 'localhost:8000']);
  });

  /** An engine whose container stays "starting" (Docker's next check is far away) and publishes `port`. */
  const starting = (port: number, over: Partial<ContainerDetails> = {}): EngineClient => {
    const unused = () => {
      throw new Error('not used by this test');
    };
    const d: ContainerDetails = {
      id: 'c1', name: 'p-web-1-1', project: 'p', service: 'web-1', number: 1, state: 'running', health: 'starting', image: 'img', configHash: 'h', configFiles: [], workingDir: '/',
      running: true, restarting: false, restartCount: 0, exitCode: 0, oomKilled: false, startedAt: '', error: '', healthLog: [], hasHealthcheck: true, memoryLimitBytes: 0, nanoCpus: 0, cmd: [],
      healthTest: GUIDE, healthTimeoutMs: 30_000, ...published(port), ...over,
    };
    return {
      ping: unused, listProject: unused, inspectRaw: unused, imageExists: unused, logsTail: unused, memoryUsage: unused, resourceUsage: unused, stop: unused, remove: unused,
      inspect: async () => d,
      async *events() {},
    };
  };

  it('returns once the published /health/ answers, while Docker still says "starting", and names the URL', async () => {
    let asked = 0;
    const port = await listen((req, res) => {
      asked += 1;
      res.writeHead(asked >= 4 && req.url === '/health/' ? 200 : 503).end();
    });
    const engine = starting(port);
    const events = new ProjectEvents(engine, 'p');
    const said: string[] = [];
    const ms = await waitForHealthy(engine, events, systemClock, { service: 'web-1', containerId: 'c1', waitFor: 'healthy', deadlineMs: 20_000, pollMs: 5000, probe: true, onHealthy: (via, url) => said.push(`${via} ${url}`) });
    events.close();
    expect(asked).toBe(4);
    expect(said).toEqual([`probe http://127.0.0.1:${port}/health/`]);
    // Woken by the answer, not by the 5 s poll.
    expect(ms).toBeLessThan(5000);
  });

  it('without probe: true it waits for Docker alone, and an unhealthy container fails although its port answers', async () => {
    const port = await listen((_req, res) => res.writeHead(200).end());
    const engine = starting(port);
    const events = new ProjectEvents(engine, 'p');
    const err = await waitForHealthy(engine, events, systemClock, { service: 'web-1', containerId: 'c1', waitFor: 'healthy', deadlineMs: 300, pollMs: 50 }).catch((e) => e);
    expect(err).toMatchObject({ kind: 'timeout' });
    const sick = starting(port, { health: 'unhealthy' });
    const err2 = await waitForHealthy(sick, events, systemClock, { service: 'web-1', containerId: 'c1', waitFor: 'healthy', deadlineMs: 5000, pollMs: 50, probe: true }).catch((e) => e);
    events.close();
    expect(err2).toBeInstanceOf(HealthCheckError);
    expect(err2).toMatchObject({ kind: 'unhealthy' });
  });
});

describe('the probe and an engine that restarted', () => {
  it('does not take a container whose health checks the engine stopped running as healthy, although its port answers', async () => {
    let restarted = false;
    // The app answers once the engine had its outage: the answer wakes the wait, which must still see the restart.
    const server = http.createServer((_req, res) => res.writeHead(restarted ? 200 : 503).end());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const unused = () => {
      throw new Error('not used by this test');
    };
    const d: ContainerDetails = {
      id: 'c1', name: 'p-web-1-1', project: 'p', service: 'web-1', number: 1, state: 'running', health: 'starting', image: 'img', configHash: 'h', configFiles: [], workingDir: '/',
      running: true, restarting: false, restartCount: 0, exitCode: 0, oomKilled: false, startedAt: '', error: '', healthLog: [], hasHealthcheck: true, memoryLimitBytes: 0, nanoCpus: 0, cmd: [],
      healthTest: GUIDE, healthTimeoutMs: 30_000, ...published(port),
    };
    const engine: EngineClient = {
      ping: unused, listProject: unused, inspectRaw: unused, imageExists: unused, logsTail: unused, memoryUsage: unused, resourceUsage: unused, stop: unused, remove: unused,
      inspect: async () => d,
      async *events() {},
    };
    const events = new ProjectEvents(engine, 'p');
    setTimeout(() => (restarted = true), 300);
    const err = await waitForHealthy(engine, events, systemClock, { service: 'web-1', containerId: 'c1', waitFor: 'healthy', deadlineMs: 5000, pollMs: 5000, probe: true, probeBackoff: { firstMs: 50, factor: 1, maxMs: 50 }, engineRestarted: () => restarted }).catch((e) => e);
    events.close();
    await new Promise((r) => server.close(r));
    expect(err).toBeInstanceOf(HealthFrozenError);
  });
});
