/** The loader against compose itself: for every compose file in the repo, the fields the tool uses equal `docker compose config --format json`. */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { loadPlan } from '../../src/plan/load-plan.js';
import { parseDuration, parseSize } from '../../src/plan/units.js';
import { PlanError } from '../../src/errors.js';
import { root } from './helpers.js';

function composeFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return composeFiles(p);
    return /\.ya?ml$/.test(e.name) ? [p] : [];
  });
}

const files = [...composeFiles(path.join(root, 'fixtures', 'compose')), ...composeFiles(path.join(root, 'plans'))];
const env: Record<string, string> = Object.fromEntries(Object.entries(process.env).filter(([k, v]) => !k.startsWith('ARENA_') && !k.startsWith('COMPOSE_') && v !== undefined)) as Record<string, string>;

interface ComposeService {
  image?: string;
  command?: string[] | null;
  entrypoint?: string[] | null;
  environment?: Record<string, string | null>;
  ports?: Array<{ host_ip?: string; target: number; published?: string; protocol?: string }>;
  healthcheck?: { test?: string[]; interval?: string; timeout?: string; start_period?: string; retries?: number; disable?: boolean };
  deploy?: { resources?: { limits?: { cpus?: number; memory?: string }; reservations?: { memory?: string } } };
  cpus?: number;
  mem_limit?: string;
  mem_reservation?: string;
  stop_grace_period?: string;
  restart?: string;
  volumes?: Array<{ type: string; source: string; target: string; read_only?: boolean }>;
}

describe('the loader agrees with docker compose config', () => {
  it('covers the repository compose files', () => expect(files.length).toBeGreaterThanOrEqual(6));

  it.each(files.map((f) => [path.relative(root, f), f]))('%s', async (_name, file) => {
    const r = await execa('docker', ['compose', '--file', file, 'config', '--format', 'json'], { env, extendEnv: false, reject: false });
    if (r.exitCode !== 0) {
      // compose rejects it: so must the loader, with a position.
      expect(() => loadPlan({ files: [file], env })).toThrow(PlanError);
      return;
    }
    const theirs = JSON.parse(r.stdout) as { name: string; services: Record<string, ComposeService> };
    const ours = loadPlan({ files: [file], env });
    expect(ours.project).toBe(theirs.name);
    expect(Object.keys(ours.services).sort()).toEqual(Object.keys(theirs.services).sort());
    for (const [name, c] of Object.entries(theirs.services)) {
      const s = ours.services[name]!;
      expect(s.image, `${name}.image`).toBe(c.image);
      expect(s.command ?? null, `${name}.command`).toEqual(c.command ?? null);
      expect(s.entrypoint ?? null, `${name}.entrypoint`).toEqual(c.entrypoint ?? null);
      expect(Object.fromEntries(Object.entries(s.environment).map(([k, v]) => [k, v.value])), `${name}.environment`).toEqual(c.environment ?? {});
      expect(s.ports.map((p) => ({ host_ip: p.hostIp, target: p.target, published: p.published, protocol: p.protocol })), `${name}.ports`).toEqual(
        (c.ports ?? []).map((p) => ({ host_ip: p.host_ip, target: p.target, published: p.published, protocol: p.protocol ?? 'tcp' })),
      );
      if (c.healthcheck && !c.healthcheck.disable) {
        expect(s.healthcheck, `${name}.healthcheck`).toEqual({
          test: c.healthcheck.test,
          intervalMs: parseDuration(c.healthcheck.interval ?? '30s'),
          timeoutMs: parseDuration(c.healthcheck.timeout ?? '30s'),
          startPeriodMs: parseDuration(c.healthcheck.start_period ?? '0s'),
          retries: c.healthcheck.retries ?? 3,
        });
      } else expect(s.healthcheck ?? undefined, `${name}.healthcheck`).toBeFalsy();
      // deploy.resources wins; the legacy service-level keys stand in where it is silent.
      const size = (v: string | undefined) => (v === undefined ? undefined : parseSize(v));
      expect(s.limits.cpus, `${name}.cpus`).toBe(c.deploy?.resources?.limits?.cpus ?? c.cpus);
      expect(s.limits.memoryBytes, `${name}.memory`).toBe(size(c.deploy?.resources?.limits?.memory) ?? size(c.mem_limit));
      expect(s.reservations.memoryBytes, `${name}.memory reservation`).toBe(size(c.deploy?.resources?.reservations?.memory) ?? size(c.mem_reservation));
      expect(s.stopGracePeriodMs, `${name}.stop_grace_period`).toBe(c.stop_grace_period === undefined ? undefined : parseDuration(c.stop_grace_period));
      expect(s.restart, `${name}.restart`).toBe(c.restart);
      expect(s.bindMounts, `${name}.volumes`).toEqual((c.volumes ?? []).filter((v) => v.type === 'bind').map((v) => ({ source: v.source, target: v.target, readOnly: v.read_only === true })));
    }
  }, 60_000);
});
