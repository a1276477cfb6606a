/** What changes between the current and the target definition of a service, in words a reviewer reads. Pure. */
import { gunicornOf, type GunicornSettings } from './gunicorn.js';
import { formatDuration, formatSize } from './units.js';
import { REDACTED, credentialsIn, redactText } from '../util/redact.js';
import type { ServicePlan } from './types.js';

/** One changed field: `{ field: "workers", from: "12", to: "4" }`. */
export interface FieldChange {
  readonly field: string;
  readonly from: string;
  readonly to: string;
}

const GUNICORN_FIELDS: ReadonlyArray<[keyof GunicornSettings, string, (v: never) => string]> = [
  ['workers', 'workers', String],
  ['threads', 'threads', String],
  ['workerClass', 'worker class', String],
  ['timeoutS', 'gunicorn timeout', (v: number) => `${v}s`],
  ['gracefulTimeoutS', 'graceful timeout', (v: number) => `${v}s`],
  ['keepAliveS', 'keep-alive', (v: number) => `${v}s`],
  ['maxRequests', 'max requests', (v: number) => (v === 0 ? 'none' : String(v))],
  ['maxRequestsJitter', 'max requests jitter', (v: number) => (v === 0 ? 'none' : String(v))],
  ['workerTmpDir', 'worker tmp dir', (v: string | undefined) => v ?? 'default'],
];

/** Lists the fields that differ; an empty list means the two definitions are the same to this tool. */
export function diffServices(current: ServicePlan | undefined, target: ServicePlan): FieldChange[] {
  if (!current) return [{ field: 'service', from: 'absent', to: 'added' }];
  const out: FieldChange[] = [];
  const add = (field: string, from: string, to: string) => {
    if (from !== to) out.push({ field, from, to });
  };
  add('image', current.image ?? 'build', target.image ?? 'build');
  const g1 = gunicornOf(current);
  const g2 = gunicornOf(target);
  const before = out.length;
  if (g1 && g2) {
    for (const [key, label, fmt] of GUNICORN_FIELDS) add(label, fmt(g1[key] as never), fmt(g2[key] as never));
  }
  // The whole command only when the parsed gunicorn flags do not already say what changed.
  const cmd = (s: ServicePlan) => [...(s.entrypoint ?? []), ...(s.command ?? [])].join(' ') || 'image default';
  if (out.length === before) add('command', cmd(current), cmd(target));
  const cpus = (v: number | undefined) => (v === undefined ? 'unlimited' : String(v));
  const mem = (v: number | undefined) => (v === undefined ? 'unlimited' : formatSize(v));
  add('cpu limit', cpus(current.limits.cpus), cpus(target.limits.cpus));
  add('memory limit', mem(current.limits.memoryBytes), mem(target.limits.memoryBytes));
  add('cpu reservation', cpus(current.reservations.cpus), cpus(target.reservations.cpus));
  add('memory reservation', mem(current.reservations.memoryBytes), mem(target.reservations.memoryBytes));
  const hc = (s: ServicePlan) => s.healthcheck;
  const h1 = hc(current);
  const h2 = hc(target);
  if (h1 === undefined || h1 === null || h2 === undefined || h2 === null) add('health check', describeHealth(h1), describeHealth(h2));
  else {
    add('health check test', h1.test.join(' '), h2.test.join(' '));
    add('health check interval', formatDuration(h1.intervalMs), formatDuration(h2.intervalMs));
    add('health check timeout', formatDuration(h1.timeoutMs), formatDuration(h2.timeoutMs));
    add('health check retries', String(h1.retries), String(h2.retries));
    add('health check start period', formatDuration(h1.startPeriodMs), formatDuration(h2.startPeriodMs));
  }
  add('stop grace period', formatDuration(current.stopGracePeriodMs ?? 10_000), formatDuration(target.stopGracePeriodMs ?? 10_000));
  const ports = (s: ServicePlan) => s.ports.map((p) => `${p.hostIp ? `${p.hostIp}:` : ''}${p.published ?? ''}${p.published ? ':' : ''}${p.target}/${p.protocol}`).join(', ') || 'none';
  add('ports', ports(current), ports(target));
  add('restart', current.restart ?? 'no', target.restart ?? 'no');
  const mounts = (s: ServicePlan) => s.bindMounts.map((b) => `${shortPath(b.source)}:${b.target}${b.readOnly ? ':ro' : ''}`).join(', ') || 'none';
  add('bind mounts', mounts(current), mounts(target));
  // Raw values (canonical JSON) with the service's secrets masked before clipping: a clipped secret would be half hidden.
  const secrets = [current, target].flatMap((s) => Object.values(s.environment)).flatMap((v) => (v.sensitive && v.value ? [v.value, ...credentialsIn(v.value)] : []));
  const raw = (v: string | undefined, none: string) => (v === undefined ? none : clip(redactText(v, secrets)));
  // Named volumes, as written, when the bind mounts do not already say what changed.
  if (!out.some((c) => c.field === 'bind mounts')) add('volumes', raw(current.raw['volumes'], 'none'), raw(target.raw['volumes'], 'none'));
  // Every other key of the service definition (labels, extra_hosts, networks, ulimits…), compared as written.
  const typed = new Set(['image', 'build', 'command', 'entrypoint', 'environment', 'env_file', 'ports', 'healthcheck', 'deploy', 'cpus', 'mem_limit', 'mem_reservation', 'stop_grace_period', 'restart', 'volumes', 'depends_on', 'scale']);
  for (const key of [...new Set([...Object.keys(current.raw), ...Object.keys(target.raw)])].sort()) {
    if (typed.has(key)) continue;
    const a = current.raw[key];
    const b = target.raw[key];
    if (a !== b) add(key, raw(a, 'unset'), raw(b, 'unset'));
  }
  const keys = new Set([...Object.keys(current.environment), ...Object.keys(target.environment)]);
  for (const key of [...keys].sort()) {
    const a = current.environment[key];
    const b = target.environment[key];
    const show = (v: typeof a) => (v === undefined ? 'unset' : v.sensitive ? REDACTED : (v.value ?? ''));
    if (a?.value !== b?.value) {
      const changedSecret = (a?.sensitive || b?.sensitive) && a !== undefined && b !== undefined;
      add(`env ${key}`, changedSecret ? `${REDACTED} (old)` : show(a), changedSecret ? `${REDACTED} (new)` : show(b));
    }
  }
  return out;
}

function clip(json: string): string {
  return json.length > 60 ? `${json.slice(0, 59)}…` : json;
}

/** The last two segments of a host path: enough to tell load-balancer.conf from load-balancer-optimized.conf. */
function shortPath(p: string): string {
  return p.split('/').slice(-2).join('/');
}

function describeHealth(h: ServicePlan['healthcheck']): string {
  if (h === undefined) return 'none in plan';
  if (h === null) return 'disabled';
  return `${h.test.join(' ')} every ${formatDuration(h.intervalMs)}, timeout ${formatDuration(h.timeoutMs)}, ${h.retries} retries`;
}

/** One line: `workers 12 → 4, threads 6 → 4, memory limit 3072M → 5120M`. */
export function summarizeChanges(changes: readonly FieldChange[], max = 6): string {
  if (changes.length === 0) return 'no change';
  const parts = changes.slice(0, max).map((c) => (c.field === 'service' ? 'new service' : `${c.field} ${c.from} → ${c.to}`));
  return parts.join(', ') + (changes.length > max ? `, +${changes.length - max} more` : '');
}
