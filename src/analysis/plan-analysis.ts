/** The edge of the analysis: reads the nginx configs a plan mounts and finds the host's capacity, then runs the pure rules. */
import { readFileSync } from 'node:fs';
import { PlanError } from '../errors.js';
import type { EngineClient } from '../engine/engine-client.js';
import { parseNginx, NginxParseError, type NginxConfig } from '../plan/nginx.js';
import type { Plan } from '../plan/types.js';
import { analyzePlan, type Analysis, type Host } from './analyze-plan.js';

/** Host capacity given on the command line. */
export interface HostFlags {
  readonly cpus?: number | undefined;
  readonly memoryBytes?: number | undefined;
}

/** The default memory kept free on the host: 5 %, at least 1 GiB. */
export function defaultReserve(memoryBytes: number): number {
  return Math.max(1024 ** 3, Math.round(memoryBytes * 0.05));
}

/** nginx configs bind-mounted into the plan's services (files under /etc/nginx ending in .conf). */
export function readNginxConfigs(plan: Plan, readFile: (f: string) => string = (f) => readFileSync(f, 'utf8')): Map<string, NginxConfig> {
  const out = new Map<string, NginxConfig>();
  for (const s of Object.values(plan.services)) {
    for (const m of s.bindMounts) {
      if (!m.target.startsWith('/etc/nginx') || !/\.conf$/.test(m.target)) continue;
      let text: string;
      try {
        text = readFile(m.source);
      } catch (err) {
        throw new PlanError(`cannot read the nginx config that ${s.name} mounts: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { file: m.source }, { cause: err });
      }
      try {
        out.set(s.name, parseNginx(text));
      } catch (err) {
        if (err instanceof NginxParseError) throw new PlanError(`invalid nginx config: ${err.message}`, { file: m.source }, { cause: err });
        throw err;
      }
    }
  }
  return out;
}

/** Finds the host: flags first, then the engine when it answers, then the plan's x-arena-deploy.host. */
export async function resolveHost(plan: Plan, flags: HostFlags, engine: EngineClient | undefined): Promise<Host | undefined> {
  const reserve = (mem: number) => plan.extension.host?.reserveMemoryBytes ?? defaultReserve(mem);
  if (flags.cpus !== undefined && flags.memoryBytes !== undefined) return { cpus: flags.cpus, memoryBytes: flags.memoryBytes, reserveMemoryBytes: reserve(flags.memoryBytes), source: 'flags' };
  if (engine) {
    try {
      const info = await engine.ping();
      if (info.ncpu > 0 && info.memTotalBytes > 0) return { cpus: flags.cpus ?? info.ncpu, memoryBytes: flags.memoryBytes ?? info.memTotalBytes, reserveMemoryBytes: reserve(info.memTotalBytes), source: 'engine' };
    } catch {
      // No engine: fall through to the plan's own statement.
    }
  }
  const h = plan.extension.host;
  const cpus = flags.cpus ?? h?.cpus;
  const memoryBytes = flags.memoryBytes ?? h?.memoryBytes;
  if (cpus !== undefined && memoryBytes !== undefined) return { cpus, memoryBytes, reserveMemoryBytes: reserve(memoryBytes), source: flags.cpus !== undefined || flags.memoryBytes !== undefined ? 'flags' : 'plan' };
  return undefined;
}

/** Reads what the plan needs from disk and runs the rules. */
export function analyzeWithConfigs(plan: Plan, host: Host | undefined): Analysis {
  return analyzePlan(plan, { host, nginx: readNginxConfigs(plan) });
}
