/** What changes between two nginx configs of a service, in the words of the service diff: upstream servers, keepalive, proxy timeouts. Pure. */
import type { FieldChange } from './diff-services.js';
import type { NginxConfig, Upstream } from './nginx.js';
import { formatDuration } from './units.js';
import { compactNames } from '../util/names.js';

function servers(u: Upstream | undefined): string {
  if (!u || u.servers.length === 0) return 'none';
  const ports = new Set(u.servers.map((s) => s.port));
  const params = new Set(u.servers.map((s) => s.params.join(' ')));
  if (ports.size === 1 && params.size === 1) {
    const [port] = [...ports];
    const [param] = [...params];
    return `${u.servers.length}: ${compactNames(u.servers.map((s) => s.host))}${port === undefined ? '' : ` on port ${port}`}${param ? `, ${param}` : ''}`;
  }
  return u.servers.map((s) => `${s.host}${s.port === undefined ? '' : `:${s.port}`}${s.params.length ? ` ${s.params.join(' ')}` : ''}`).join(', ');
}

function keepalive(u: Upstream | undefined): string {
  if (!u) return 'none';
  return `${u.keepaliveConnections === undefined ? 'no idle connections' : `${u.keepaliveConnections} idle connections`}, timeout ${formatDuration(u.keepaliveTimeoutMs)}`;
}

function readTimeouts(c: NginxConfig | undefined): string {
  if (!c || c.proxyPasses.length === 0) return 'none';
  const by = new Map<string, number[]>();
  for (const p of c.proxyPasses) by.set(p.target, [...(by.get(p.target) ?? []), p.readTimeoutMs]);
  return [...by.entries()].map(([target, ms]) => `${target}: ${[...new Set(ms)].map(formatDuration).join('/')}`).join(', ');
}

/** The fields that differ between the nginx config a service mounts now and the one the target mounts. */
export function diffNginx(current: NginxConfig | undefined, target: NginxConfig | undefined): FieldChange[] {
  const out: FieldChange[] = [];
  const add = (field: string, from: string, to: string) => {
    if (from !== to) out.push({ field, from, to });
  };
  const names = [...new Set([...(current?.upstreams ?? []), ...(target?.upstreams ?? [])].map((u) => u.name))].sort();
  for (const name of names) {
    const a = current?.upstreams.find((u) => u.name === name);
    const b = target?.upstreams.find((u) => u.name === name);
    add(`nginx upstream ${name} servers`, servers(a), servers(b));
    add(`nginx upstream ${name} keepalive`, keepalive(a), keepalive(b));
  }
  add('nginx proxy_read_timeout', readTimeouts(current), readTimeouts(target));
  return out;
}
