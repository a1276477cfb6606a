/** The edge of the analysis: reads the nginx configs a plan mounts and finds the host's capacity, then runs the pure rules. */
import { readdirSync, statSync } from 'node:fs';
import { readRegularFile } from '../plan/load-plan.js';
import path from 'node:path';
import { PlanError } from '../errors.js';
import type { EngineClient, EngineInfo } from '../engine/engine-client.js';
import { combineNginx, parseNginx, NginxParseError, type NginxConfig } from '../plan/nginx.js';
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

/** nginx configs bind-mounted into the plan's services: files under /etc/nginx ending in .conf, and the .conf files of mounted folders. */
export function readNginxConfigs(plan: Plan, fs: { readFile: (f: string) => string; list: (d: string) => string[] | undefined } = realFs): Map<string, NginxConfig> {
  const out = new Map<string, NginxConfig>();
  for (const s of Object.values(plan.services)) {
    const configs: NginxConfig[] = [];
    for (const m of s.bindMounts) {
      if (!m.target.startsWith('/etc/nginx')) continue;
      const inDir = fs.list(m.source);
      const files = inDir ? inDir.filter((f) => f.endsWith('.conf')).map((f) => path.join(m.source, f)) : /\.conf$/.test(m.target) ? [m.source] : [];
      for (const file of files) {
        let text: string;
        try {
          text = fs.readFile(file);
        } catch (err) {
          throw new PlanError(`cannot read the nginx config that ${s.name} mounts: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { file }, { cause: err });
        }
        try {
          configs.push(parseNginx(text));
        } catch (err) {
          if (err instanceof NginxParseError) throw new PlanError(`invalid nginx config: ${err.message}`, { file, line: err.line, col: 1 }, { cause: err });
          throw err;
        }
      }
    }
    if (configs.length) out.set(s.name, combineNginx(configs));
  }
  return out;
}

const realFs = {
  readFile: readRegularFile,
  list: (d: string) => {
    try {
      return statSync(d).isDirectory() ? readdirSync(d).sort() : undefined;
    } catch {
      return undefined;
    }
  },
};

/** Finds the host: each of cpus and memory from its flag, else the plan's x-arena-deploy.host (the host it is written for), else the engine when it answers. */
export async function resolveHost(plan: Plan, flags: HostFlags, engine: EngineClient | undefined): Promise<Host | undefined> {
  const h = plan.extension.host;
  let cpus = flags.cpus ?? h?.cpus;
  let memoryBytes = flags.memoryBytes ?? h?.memoryBytes;
  let fromEngine = false;
  if (engine && (cpus === undefined || memoryBytes === undefined)) {
    const seen = await engine.ping().then((info) => engineHost(plan, info), () => undefined);
    if (seen) {
      cpus ??= seen.cpus;
      memoryBytes ??= seen.memoryBytes;
      fromEngine = true;
    }
  }
  if (cpus === undefined || memoryBytes === undefined) return undefined;
  const source = fromEngine ? 'engine' : flags.cpus !== undefined || flags.memoryBytes !== undefined ? 'flags' : 'plan';
  return { cpus, memoryBytes, reserveMemoryBytes: h?.reserveMemoryBytes ?? defaultReserve(memoryBytes), source };
}

/** The host as the engine reports it (`docker info`), undefined when it reports nothing usable. */
export function engineHost(plan: Plan, info: EngineInfo): Host | undefined {
  if (!(info.ncpu > 0 && info.memTotalBytes > 0)) return undefined;
  return { cpus: info.ncpu, memoryBytes: info.memTotalBytes, reserveMemoryBytes: plan.extension.host?.reserveMemoryBytes ?? defaultReserve(info.memTotalBytes), source: 'engine' };
}

/** Reads what the plan needs from disk and runs the rules. */
export function analyzeWithConfigs(plan: Plan, host: Host | undefined): Analysis {
  return analyzePlan(plan, { host, nginx: readNginxConfigs(plan) });
}
