/**
 * Probing a new container's health URL through its published port, beside Docker's own health status.
 *
 * Docker runs a health check once per interval (30 s in the real plans), so its status says "healthy" up to a whole
 * interval after the app first answers. The tool runs the same check from outside, as the guide's
 * `curl -f --max-time 25 http://localhost:800N/health/` does by hand: the URL the health check asks inside the
 * container, on the host port it is published to, at a short interval that backs off (50 ms, ×1.5, at most 200 ms),
 * one request at a time. Only used with the local engine: a published port of a remote engine is on another host.
 */
import http from 'node:http';
import type { ContainerDetails } from '../engine/engine-client.js';
import type { Clock } from './health-wait.js';

/** What one container's probe asks, and for how long at most per request. */
export interface ProbeTarget {
  /** `http://127.0.0.1:8001/health/`. */
  readonly url: string;
  readonly timeoutMs: number;
  /** The Host header the check itself sends (`localhost:8000`): an app that checks it answers the probe as it answers Docker's check. */
  readonly host: string;
  /** An answer below this status counts: 400 for curl (`-f` fails at 400 and up, no redirect is followed), 300 for wget (it follows a redirect, whose end the probe does not ask). */
  readonly okBelow: number;
}

/** The backoff of a probe: the pause after a failed request grows from `firstMs` by `factor` up to `maxMs`. */
export interface ProbeBackoff {
  readonly firstMs: number;
  readonly factor: number;
  readonly maxMs: number;
}

/**
 * 50 ms, then ×1.5 up to 200 ms: while nothing listens a request is a refused connect (cheap for the app); the cap
 * keeps the lag between the app's first answer and "healthy" near 100 ms on average, 200 ms at worst, at five
 * requests a second at most, one at a time (a slow answer delays the next request by its own duration).
 */
export const DEFAULT_BACKOFF: ProbeBackoff = { firstMs: 50, factor: 1.5, maxMs: 200 };

/** Options of curl and wget that bound a request's time. */
const TIMEOUT_FLAGS = new Set(['--max-time', '-m', '--timeout', '-T']);
/** Options that take a value and do not change what is asked: where the body goes, connect bounds, retries. */
const VALUE_FLAGS = new Set(['-o', '--output', '-O', '--output-document', '--connect-timeout', '--retry', '--tries', '-t', '-w', '--write-out']);
/** Flags without a value that do not change what is asked: fail on errors, quiet, silent, IPv4 (not wget's --spider: a HEAD). */
const BARE_FLAGS = /^(-[fsSq4]+|-O-|--fail|--silent|--show-error|--quiet|--no-verbose|-nv|--ipv4|-4)$/;
const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '0.0.0.0', '[::1]', '::1']);
/** Host addresses a published port is reachable on from this host at 127.0.0.1. */
const REACHABLE_BINDS = new Set(['', '0.0.0.0', '127.0.0.1', '::', '[::]']);

/**
 * The health check's own URL through the published port, or undefined when there is none to probe: the check is not
 * an http request (curl or wget) to the container itself, or its port is not published on this host's loopback.
 */
export function probeTargetFor(test: readonly string[] | undefined, details: Pick<ContainerDetails, 'publishedPorts'>, healthTimeoutMs: number): ProbeTarget | undefined {
  if (!test || test.length < 2 || (test[0] !== 'CMD' && test[0] !== 'CMD-SHELL')) return undefined;
  let words = test[0] === 'CMD-SHELL' ? (test[1] ?? '').trim().replace(/\s*\|\|\s*exit\s+1\s*$/, '').split(/\s+/).filter(Boolean) : test.slice(1);
  // Only a check that is that one request: with more to it (`&& test -f /dev/shm/heartbeat`, a pipe, a second
  // command), an answer of the URL alone would not be what Docker checks.
  if (test[0] === 'CMD-SHELL' && words.some((w) => /[;&|<>`$()]/.test(w))) return undefined;
  words = words.map((w) => w.replace(/^['"]|['"]$/g, ''));
  const tool = words.findIndex((w) => /(^|\/)(curl|wget)$/.test(w));
  // The command itself must be the first word (no `env`, `timeout 5 curl …`: those change what is asked).
  if (tool !== 0) return undefined;
  let url: URL | undefined;
  let maxTimeS: number | undefined;
  for (let i = tool + 1; i < words.length; i += 1) {
    const w = words[i] as string;
    const [flag, inline] = w.startsWith('--') && w.includes('=') ? [w.slice(0, w.indexOf('=')), w.slice(w.indexOf('=') + 1)] : [w, undefined];
    if (TIMEOUT_FLAGS.has(flag)) {
      const value = inline ?? words[(i += 1)];
      const n = Number(value);
      if (!Number.isFinite(n) || n <= 0) return undefined;
      maxTimeS = n;
    } else if (VALUE_FLAGS.has(flag)) {
      if (inline === undefined) i += 1;
    } else if (/^https?:\/\//.test(w)) {
      if (url) return undefined;
      try {
        url = new URL(w);
      } catch {
        return undefined;
      }
    } else if (!BARE_FLAGS.test(w)) {
      // Any other option (a header, a method, credentials, -k…) could make the check ask something a plain GET does not.
      return undefined;
    }
  }
  if (!url || url.protocol !== 'http:' || !LOCAL_HOSTS.has(url.hostname) || url.username || url.password) return undefined;
  const containerPort = Number(url.port || '80');
  const bound = (details.publishedPorts ?? []).find((p) => p.containerPort === containerPort && p.protocol === 'tcp' && REACHABLE_BINDS.has(p.hostIp));
  if (!bound) return undefined;
  // No longer than the check itself allows (curl's --max-time, else the check's timeout): a slower answer fails Docker's check too.
  const timeoutMs = Math.max(50, Math.min(maxTimeS !== undefined ? maxTimeS * 1000 : healthTimeoutMs || 30_000, healthTimeoutMs || 30_000));
  // A port published on IPv6 only (`[::]:8001:8000`) is asked on ::1: 127.0.0.1 may be another process's port.
  const host = bound.hostIp === '::' || bound.hostIp === '[::]' ? '[::1]' : '127.0.0.1';
  return { url: `http://${host}:${bound.hostPort}${url.pathname}${url.search}`, timeoutMs, host: url.host, okBelow: /wget$/.test(words[0] as string) ? 300 : 400 };
}

/** One GET with a fresh connection, with the check's Host header: true for a status below `okBelow` (what the check's tool calls success). */
export function probeOnce(target: ProbeTarget, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (ok: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', abort);
      req.destroy();
      resolve(ok);
    };
    const abort = () => finish(false);
    const req = http.get(target.url, { agent: false, headers: { host: target.host, 'user-agent': 'arena-deploy-probe', connection: 'close' } }, (res) => {
      res.resume();
      finish((res.statusCode ?? 500) < target.okBelow);
    });
    req.on('error', () => finish(false));
    const timer = setTimeout(() => finish(false), target.timeoutMs);
    timer.unref();
    signal?.addEventListener('abort', abort, { once: true });
  });
}

/**
 * Probes until a request succeeds (resolves with the time of that answer) or the signal aborts (resolves undefined).
 * Never rejects: a failed request only means "not yet".
 */
export async function probeUntilOk(target: ProbeTarget, clock: Clock, signal: AbortSignal, backoff: ProbeBackoff = DEFAULT_BACKOFF, once = probeOnce): Promise<number | undefined> {
  let pause = backoff.firstMs;
  while (!signal.aborted) {
    if (await once(target, signal)) return signal.aborted ? undefined : clock.now();
    if (signal.aborted) break;
    await clock.sleep(pause, signal);
    pause = Math.min(pause * backoff.factor, backoff.maxMs);
  }
  return undefined;
}
