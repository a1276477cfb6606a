/** The plan read the way an experienced operator would: (Plan, Host, nginx configs) → findings and the guide's tables. Pure. */
import { gunicornOf, type GunicornSettings } from '../plan/gunicorn.js';
import type { NginxConfig } from '../plan/nginx.js';
import type { Plan, ServicePlan } from '../plan/types.js';
import { matchesAny } from '../util/glob.js';

/** How sure the analysis is that something will go wrong. */
export type Severity = 'error' | 'warning' | 'info';

/** One thing the analysis found, with the numbers behind it. */
export interface Finding {
  readonly rule: string;
  readonly severity: Severity;
  /** The service it is about; undefined for host-wide findings. */
  readonly service: string | undefined;
  readonly message: string;
  readonly values: Readonly<Record<string, number | string | boolean | null>>;
}

/** The machine the plan runs on. */
export interface Host {
  readonly cpus: number;
  readonly memoryBytes: number;
  /** Memory kept free for the OS and page cache; host-memory-overcommit compares against memory minus this. */
  readonly reserveMemoryBytes: number;
  /** Where the numbers came from: the engine, flags, or the plan's x-arena-deploy.host. */
  readonly source: 'engine' | 'flags' | 'plan';
}

/** Tunables of the analysis, defaults from the guide. */
export interface AnalysisOptions {
  readonly host: Host | undefined;
  /** nginx configs found in the plan's bind mounts, by service. */
  readonly nginx: ReadonlyMap<string, NginxConfig>;
  /** A busy worker may take this long to answer a probe (default 30 s, the guide's). */
  readonly busyWorkerToleranceMs?: number;
  /** Services whose workers serve traffic and should sit behind nginx (default web-*). */
  readonly webServices?: string;
}

const MIB = 1024 ** 2;
/** The guide's memory model: base + workers × per-worker + overhead. */
export const DEFAULT_MEMORY_MODEL = { baseBytes: 200 * MIB, perWorkerBytes: 300 * MIB, overheadBytes: 200 * MIB };
/** The guide's sustained requests per second per thread: AI requests ~0.3, fast API calls ~20. */
export const RPS_PER_THREAD = { ai: 0.3, fastApi: 20 };
/** Docker's default stop timeout: compose's stop_grace_period when unset. */
const DEFAULT_STOP_GRACE_MS = 10_000;

/** Per-service numbers behind the guide's tables. */
export interface ServiceRow {
  readonly service: string;
  readonly containers: number;
  readonly cpuLimit: number | undefined;
  readonly memoryLimitMb: number | undefined;
  readonly workers: number | undefined;
  readonly threads: number | undefined;
  readonly handlers: number | undefined;
  readonly estimatedMemoryMb: number | undefined;
  readonly headroomMb: number | undefined;
}

/** The guide's tables computed from the files. */
export interface Tables {
  readonly services: readonly ServiceRow[];
  readonly totals: {
    readonly containers: number;
    readonly cpuLimits: number;
    readonly cpuReservations: number;
    readonly memoryLimitsMb: number;
    /** Services with no CPU limit, which the CPU total leaves out ("22+"). */
    readonly unlimitedCpu: readonly string[];
    readonly unlimitedMemory: readonly string[];
    readonly handlers: number;
    readonly rpsAi: number;
    readonly rpsFastApi: number;
  };
  readonly host: { readonly cpus: number; readonly memoryMb: number; readonly cpuRatioPct: number; readonly memoryRatioPct: number } | undefined;
}

/** What analyzing a plan gives. */
export interface Analysis {
  readonly findings: readonly Finding[];
  readonly tables: Tables;
  /** Why host rules were skipped, when they were. */
  readonly hostSkipped: string | undefined;
}

const mb = (bytes: number) => Math.round(bytes / MIB);
const seconds = (ms: number) => Math.round(ms / 100) / 10;

/** A health check probe's own time limit (`curl --max-time 25`, `wget -T 5`), in ms. */
export function probeTimeoutMs(test: readonly string[]): number | undefined {
  const words = test[0] === 'CMD-SHELL' ? (test[1] ?? '').split(/\s+/) : test.slice(1);
  for (let i = 0; i < words.length; i += 1) {
    const w = words[i] as string;
    const next = words[i + 1];
    const inline = /^--(max-time|timeout)=(\d+(?:\.\d+)?)$/.exec(w) ?? /^-[mT](\d+(?:\.\d+)?)$/.exec(w);
    if (inline) return Number(inline[inline.length - 1]) * 1000;
    if ((w === '--max-time' || w === '-m' || w === '-T' || w === '--timeout') && next !== undefined && /^\d+(\.\d+)?$/.test(next)) return Number(next) * 1000;
  }
  return undefined;
}

/** Runs every rule and computes the tables. */
export function analyzePlan(plan: Plan, options: AnalysisOptions): Analysis {
  const findings: Finding[] = [];
  const add = (f: Finding) => findings.push(f);
  const model = {
    baseBytes: plan.extension.memoryModel?.baseBytes ?? DEFAULT_MEMORY_MODEL.baseBytes,
    perWorkerBytes: plan.extension.memoryModel?.perWorkerBytes ?? DEFAULT_MEMORY_MODEL.perWorkerBytes,
    overheadBytes: plan.extension.memoryModel?.overheadBytes ?? DEFAULT_MEMORY_MODEL.overheadBytes,
  };
  const tolerance = options.busyWorkerToleranceMs ?? 30_000;
  const webGlob = options.webServices ?? plan.extension.services ?? 'web-*';
  const names = Object.keys(plan.services).sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  const rows: ServiceRow[] = [];

  for (const name of names) {
    const s = plan.services[name] as ServicePlan;
    const g = gunicornOf(s);
    // Workers the plan does not fix (a config file, `--workers $N`) cannot be estimated.
    const known = g && !g.configFile && !g.unknown.includes('workers');
    const estimate = g && known ? model.baseBytes + g.workers * model.perWorkerBytes + model.overheadBytes : undefined;
    // Only gthread workers run threads; sync and async workers count one handler each here.
    const perWorker = g ? (g.workerClass === 'gthread' ? g.threads : 1) : 0;
    const limit = s.limits.memoryBytes;
    rows.push({
      service: name,
      containers: s.replicas,
      cpuLimit: s.limits.cpus,
      memoryLimitMb: limit === undefined ? undefined : mb(limit),
      workers: known ? g?.workers : undefined,
      threads: known ? perWorker : undefined,
      handlers: g && known ? g.workers * perWorker : undefined,
      estimatedMemoryMb: estimate === undefined ? undefined : mb(estimate),
      headroomMb: estimate !== undefined && limit !== undefined ? mb(limit - estimate) : undefined,
    });
    if (g) gunicornRules(s, g, { estimate, limit, tolerance, model }, add);
    healthRules(s, g, tolerance, add);
  }

  nginxRules(plan, options.nginx, webGlob, add);

  const counted = names.map((n) => plan.services[n] as ServicePlan);
  const sum = (f: (s: ServicePlan) => number | undefined) => counted.reduce((acc, s) => acc + (f(s) ?? 0) * s.replicas, 0);
  const cpuLimits = round2(sum((s) => s.limits.cpus));
  const cpuReservations = round2(sum((s) => s.reservations.cpus));
  const memoryLimits = sum((s) => s.limits.memoryBytes);
  const handlers = rows.reduce((a, r) => a + (r.handlers ?? 0) * r.containers, 0);
  const unlimitedCpu = counted.filter((s) => s.limits.cpus === undefined).map((s) => s.name);
  const unlimitedMemory = counted.filter((s) => s.limits.memoryBytes === undefined).map((s) => s.name);

  let hostTable: Tables['host'];
  let hostSkipped: string | undefined;
  const host = options.host;
  if (!host) {
    hostSkipped = 'no host capacity known (no --host-cpus/--host-memory, no x-arena-deploy.host, no engine answered): host rules skipped';
  } else {
    const cpuRatio = host.cpus > 0 ? Math.round((cpuLimits / host.cpus) * 1000) / 10 : 0;
    const memRatio = host.memoryBytes > 0 ? Math.round((memoryLimits / host.memoryBytes) * 1000) / 10 : 0;
    hostTable = { cpus: host.cpus, memoryMb: mb(host.memoryBytes), cpuRatioPct: cpuRatio, memoryRatioPct: memRatio };
    for (const s of counted) {
      if (s.limits.cpus !== undefined && s.limits.cpus > host.cpus) {
        add({
          rule: 'cpu-limit-exceeds-host', severity: 'error', service: s.name,
          message: `${s.name} asks for a limit of ${s.limits.cpus} CPUs on a host with ${host.cpus}: the engine refuses to create it ("Range of CPUs is from 0.01 to ${host.cpus}.00").`,
          values: { cpus: s.limits.cpus, hostCpus: host.cpus },
        });
      }
    }
    const plus = unlimitedCpu.length ? '+' : '';
    if (cpuReservations > host.cpus) {
      add({
        rule: 'host-cpu-overcommit', severity: 'error', service: undefined,
        message: `CPU reservations add up to ${cpuReservations} of ${host.cpus} vCPUs: the engine cannot give every container what it reserves.`,
        values: { reservedCpus: cpuReservations, hostCpus: host.cpus, ratioPct: Math.round((cpuReservations / host.cpus) * 1000) / 10 },
      });
    }
    if (cpuLimits > host.cpus) {
      add({
        rule: 'host-cpu-overcommit', severity: 'warning', service: undefined,
        message: `CPU limits add up to ${cpuLimits}${plus} of ${host.cpus} vCPUs (${cpuRatio} %${plus ? ' or more' : ''}): under load the containers are throttled, not killed${unlimitedCpu.length ? `; ${unlimitedCpu.join(', ')} ${unlimitedCpu.length === 1 ? 'has' : 'have'} no CPU limit` : ''}.`,
        values: { limitCpus: cpuLimits, hostCpus: host.cpus, ratioPct: cpuRatio, unlimited: unlimitedCpu.length ? unlimitedCpu.join(',') : null },
      });
    }
    const usable = host.memoryBytes - host.reserveMemoryBytes;
    if (memoryLimits > usable) {
      add({
        rule: 'host-memory-overcommit', severity: 'error', service: undefined,
        message: `Memory limits add up to ${mb(memoryLimits)} MB, more than the ${mb(usable)} MB the host can give (${mb(host.memoryBytes)} MB less a ${mb(host.reserveMemoryBytes)} MB reserve): the kernel's OOM killer picks victims.`,
        values: { limitsMb: mb(memoryLimits), hostMb: mb(host.memoryBytes), reserveMb: mb(host.reserveMemoryBytes), overByMb: mb(memoryLimits - usable) },
      });
    }
  }

  return {
    findings: findings.sort((a, b) => severityRank(a.severity) - severityRank(b.severity)),
    tables: {
      services: rows,
      totals: {
        containers: counted.reduce((a, s) => a + s.replicas, 0),
        cpuLimits,
        cpuReservations,
        memoryLimitsMb: mb(memoryLimits),
        unlimitedCpu,
        unlimitedMemory,
        handlers,
        rpsAi: Math.round(handlers * RPS_PER_THREAD.ai * 10) / 10,
        rpsFastApi: Math.round(handlers * RPS_PER_THREAD.fastApi),
      },
      host: hostTable,
    },
    hostSkipped,
  };
}

function severityRank(s: Severity): number {
  return s === 'error' ? 0 : s === 'warning' ? 1 : 2;
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}

function gunicornRules(
  s: ServicePlan,
  g: GunicornSettings,
  ctx: { estimate: number | undefined; limit: number | undefined; tolerance: number; model: typeof DEFAULT_MEMORY_MODEL },
  add: (f: Finding) => void,
): void {
  const { estimate, limit, model } = ctx;
  if (g.configFile || g.unknown.length) {
    add({
      rule: 'gunicorn-settings-unknown', severity: 'info', service: s.name,
      message: `${s.name}: ${g.configFile ? `gunicorn reads ${g.configFile}, which the analysis cannot see` : `the plan does not fix ${g.unknown.join(', ')} (set from a variable at run time)`}: the memory estimate and the gunicorn rules that depend on it are skipped.`,
      values: { configFile: g.configFile ?? null, unknown: g.unknown.join(',') },
    });
    if (g.configFile) return;
  }
  if (estimate !== undefined && limit !== undefined && estimate > limit) {
    add({
      rule: 'memory-overcommit', severity: 'error', service: s.name,
      message: `${s.name} needs about ${mb(estimate)} MB (${mb(model.baseBytes)} + ${g.workers} workers × ${mb(model.perWorkerBytes)} + ${mb(model.overheadBytes)}) but its limit is ${mb(limit)} MB: over by ${mb(estimate - limit)} MB, the OOM killer will SIGKILL it.`,
      values: { estimatedMb: mb(estimate), limitMb: mb(limit), overByMb: mb(estimate - limit), workers: g.workers, perWorkerMb: mb(model.perWorkerBytes) },
    });
  }
  const grace = s.stopGracePeriodMs ?? DEFAULT_STOP_GRACE_MS;
  if (grace < g.gracefulTimeoutS * 1000) {
    add({
      rule: 'stop-grace-shorter-than-graceful-timeout', severity: 'warning', service: s.name,
      message: `${s.name}: stop_grace_period ${seconds(grace)} s${s.stopGracePeriodMs === undefined ? ' (compose default)' : ''} is shorter than gunicorn's --graceful-timeout ${g.gracefulTimeoutS} s: docker stop kills in-flight requests.`,
      values: { stopGracePeriodS: seconds(grace), gracefulTimeoutS: g.gracefulTimeoutS },
    });
  }
  if (g.maxRequests === 0) {
    add({ rule: 'missing-max-requests', severity: 'warning', service: s.name, message: `${s.name}: gunicorn has no --max-requests, so a leaking worker is never recycled (the guide uses 1000).`, values: { maxRequests: 0 } });
  } else if (g.maxRequestsJitter === 0) {
    add({ rule: 'missing-max-requests-jitter', severity: 'warning', service: s.name, message: `${s.name}: --max-requests ${g.maxRequests} without --max-requests-jitter recycles all workers at once (the guide uses 100).`, values: { maxRequests: g.maxRequests, maxRequestsJitter: 0 } });
  }
  if (g.workerTmpDir !== '/dev/shm') {
    add({ rule: 'worker-tmp-dir-not-shm', severity: 'warning', service: s.name, message: `${s.name}: worker heartbeats go to ${g.workerTmpDir ?? 'the default temporary folder (disk)'}; --worker-tmp-dir /dev/shm keeps them in RAM, so a slow disk cannot make the arbiter kill workers.`, values: { workerTmpDir: g.workerTmpDir ?? null } });
  }
  if (s.limits.cpus !== undefined && !g.unknown.includes('workers')) {
    const formula = Math.round(2 * s.limits.cpus + 1);
    add({
      rule: 'workers-formula', severity: 'info', service: s.name,
      message: `${s.name}: ${g.workers} workers on ${s.limits.cpus} CPU${s.limits.cpus === 1 ? '' : 's'}; the (2 × CPUs) + 1 rule of thumb gives ${formula}${g.workers === formula ? '' : g.workers < formula ? ' (fewer workers, more threads: fine for I/O-bound work)' : ' (more workers than CPUs can run at once)'}.`,
      values: { workers: g.workers, cpus: s.limits.cpus, formula },
    });
  }
}

function healthRules(s: ServicePlan, g: GunicornSettings | undefined, tolerance: number, add: (f: Finding) => void): void {
  const h = s.healthcheck;
  if (!h) return;
  if (g && h.timeoutMs < tolerance && g.timeoutS * 1000 > h.timeoutMs) {
    add({
      rule: 'health-timeout-too-short', severity: 'warning', service: s.name,
      message: `${s.name}: health check timeout ${seconds(h.timeoutMs)} s is below the ${seconds(tolerance)} s a busy worker may need while gunicorn allows requests of ${g.timeoutS} s: probes time out on busy workers and the container is marked unhealthy.`,
      values: { healthTimeoutS: seconds(h.timeoutMs), toleranceS: seconds(tolerance), gunicornTimeoutS: g.timeoutS, retries: h.retries },
    });
  }
  const probe = probeTimeoutMs(h.test);
  if (probe !== undefined && probe >= h.timeoutMs) {
    add({
      rule: 'probe-timeout-exceeds-healthcheck', severity: 'warning', service: s.name,
      message: `${s.name}: the probe's own limit (${seconds(probe)} s) is not below the health check timeout (${seconds(h.timeoutMs)} s): Docker kills the probe first, so its error never shows.`,
      values: { probeTimeoutS: seconds(probe), healthTimeoutS: seconds(h.timeoutMs) },
    });
  }
}

/** Every name a service answers to on the compose network: its name, container_name, network aliases. */
function namesOf(s: ServicePlan): string[] {
  const out = [s.name];
  const cn = s.raw['container_name'];
  if (cn) out.push(JSON.parse(cn) as string);
  const nets = s.raw['networks'] ? (JSON.parse(s.raw['networks']) as unknown) : undefined;
  if (nets && typeof nets === 'object' && !Array.isArray(nets)) {
    for (const n of Object.values(nets as Record<string, { aliases?: string[] } | null>)) for (const a of n?.aliases ?? []) out.push(a);
  }
  return out;
}

function nginxRules(plan: Plan, nginx: ReadonlyMap<string, NginxConfig>, webGlob: string, add: (f: Finding) => void): void {
  const services = Object.values(plan.services);
  const web = services.filter((s) => matchesAny(s.name, webGlob));
  const owner = new Map<string, ServicePlan>();
  for (const s of services) for (const n of namesOf(s)) owner.set(n, s);
  for (const [proxy, conf] of nginx) {
    const upstreamNames = new Set(conf.upstreams.map((u) => u.name));
    // Hosts nginx sends requests to: upstream servers, and proxy_pass targets that are not upstreams.
    const routed = new Set([...conf.upstreams.flatMap((u) => u.servers.map((x) => x.host)), ...conf.proxyPasses.map((p) => p.target).filter((t) => !upstreamNames.has(t) && !t.includes('$'))]);
    for (const host of routed) {
      // Only a bare name can be a compose service; dotted names, IPs, unix sockets and [v6] are outside the plan.
      const bare = /^[A-Za-z0-9_-]+$/.test(host) && host !== 'localhost';
      if (bare && !owner.has(host)) {
        add({ rule: 'upstream-mismatch', severity: 'error', service: proxy, message: `${proxy} routes to "${host}", which the plan does not run: nginx will not start ("host not found in upstream").`, values: { upstreamHost: host } });
      }
    }
    const routedServices = new Set([...routed].map((h) => owner.get(h)?.name).filter((n): n is string => n !== undefined));
    if (conf.includes.length) {
      add({ rule: 'nginx-include-not-followed', severity: 'info', service: proxy, message: `${proxy}'s config includes ${conf.includes.join(', ')}, which the analysis does not read: upstreams and timeouts set there are not checked.`, values: { includes: conf.includes.join(',') } });
    }
    for (const s of web) {
      if (!routedServices.has(s.name) && conf.includes.length === 0) add({ rule: 'upstream-mismatch', severity: 'error', service: proxy, message: `${s.name} runs but ${proxy} does not route to it: it gets no traffic.`, values: { missing: s.name } });
    }
    for (const s of services) {
      const g = gunicornOf(s);
      if (!g || !routedServices.has(s.name)) continue;
      const mine = new Set(namesOf(s));
      const myUpstreams = conf.upstreams.filter((u) => u.servers.some((srv) => mine.has(srv.host)));
      // The sync worker closes every connection after its response (gunicorn ignores --keep-alive there): no race.
      if (g.workerClass !== 'sync') {
        for (const u of myUpstreams.filter((x) => x.keepaliveConnections !== undefined)) {
          if (g.keepAliveS * 1000 <= u.keepaliveTimeoutMs) {
            add({
              rule: 'keepalive-mismatch', severity: 'warning', service: s.name,
              message: `${s.name}: gunicorn --keep-alive ${g.keepAliveS} s is not above nginx's upstream keepalive_timeout ${seconds(u.keepaliveTimeoutMs)} s: gunicorn closes idle connections nginx still reuses, and requests fail with 502.`,
              values: { gunicornKeepAliveS: g.keepAliveS, nginxKeepaliveTimeoutS: seconds(u.keepaliveTimeoutMs), upstream: u.name },
            });
          }
        }
      }
      const targets = new Set([...mine, ...myUpstreams.map((u) => u.name)]);
      const timeouts = conf.proxyPasses.filter((p) => targets.has(p.target)).map((p) => p.readTimeoutMs);
      const shortest = timeouts.length ? Math.min(...timeouts) : undefined;
      if (shortest !== undefined && shortest < g.timeoutS * 1000) {
        add({
          rule: 'proxy-timeout-shorter-than-gunicorn', severity: 'warning', service: s.name,
          message: `${s.name}: nginx's proxy_read_timeout ${seconds(shortest)} s is below gunicorn's --timeout ${g.timeoutS} s: long requests get 504 from nginx while gunicorn still works on them.`,
          values: { proxyReadTimeoutS: seconds(shortest), gunicornTimeoutS: g.timeoutS },
        });
      }
    }
  }
}
