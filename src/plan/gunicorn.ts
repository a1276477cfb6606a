/** What a service's gunicorn command line (and GUNICORN_CMD_ARGS) says. Pure. */
import { shellSplit } from '../util/shell-split.js';
import type { ServicePlan } from './types.js';

/** gunicorn's settings that matter to capacity and rollouts, with gunicorn's defaults filled in. */
export interface GunicornSettings {
  readonly app: string | undefined;
  readonly workers: number;
  readonly threads: number;
  readonly workerClass: string;
  readonly timeoutS: number;
  readonly gracefulTimeoutS: number;
  readonly keepAliveS: number;
  readonly maxRequests: number;
  readonly maxRequestsJitter: number;
  readonly workerTmpDir: string | undefined;
  readonly bind: readonly string[];
  /** A `-c/--config` file gunicorn reads: settings there override what is shown here. */
  readonly configFile: string | undefined;
  /** Settings whose value the plan does not fix (`--workers $$N`): shown as gunicorn's default, but unknown. */
  readonly unknown: readonly string[];
}

type Key = Exclude<keyof GunicornSettings, 'app' | 'bind' | 'configFile' | 'unknown'>;

const FLAGS: Record<string, Key | 'bind' | 'config'> = {
  '--workers': 'workers',
  '-w': 'workers',
  '--threads': 'threads',
  '--worker-class': 'workerClass',
  '-k': 'workerClass',
  '--timeout': 'timeoutS',
  '-t': 'timeoutS',
  '--graceful-timeout': 'gracefulTimeoutS',
  '--keep-alive': 'keepAliveS',
  '--max-requests': 'maxRequests',
  '--max-requests-jitter': 'maxRequestsJitter',
  '--worker-tmp-dir': 'workerTmpDir',
  '--bind': 'bind',
  '-b': 'bind',
  '--config': 'config',
  '-c': 'config',
};

const NUMERIC = new Set<Key>(['workers', 'threads', 'timeoutS', 'gracefulTimeoutS', 'keepAliveS', 'maxRequests', 'maxRequestsJitter']);

/** Reads gunicorn's settings from a service (command, then entrypoint); undefined when it does not run gunicorn. */
export function gunicornOf(service: ServicePlan): GunicornSettings | undefined {
  const argv = [...(service.entrypoint ?? []), ...(service.command ?? [])];
  const cmdArgs = service.environment['GUNICORN_CMD_ARGS']?.value ?? undefined;
  const concurrency = service.environment['WEB_CONCURRENCY']?.value ?? undefined;
  return parseGunicorn(argv, cmdArgs ?? undefined, concurrency ?? undefined);
}

/** Parses a gunicorn invocation; `sh -c "…"` and `python -m gunicorn` are looked into. */
export function parseGunicorn(argv: readonly string[], gunicornCmdArgs?: string, webConcurrency?: string): GunicornSettings | undefined {
  const words = expandShell(argv);
  let start = words.findIndex((w) => /(^|\/)gunicorn3?$/.test(w));
  if (start < 0) {
    const m = words.findIndex((w, i) => w === '-m' && words[i + 1] === 'gunicorn');
    if (m < 0) return undefined;
    start = m + 1;
  }
  const values: Partial<Record<Key, string>> = {};
  const bind: string[] = [];
  let configFile: string | undefined;
  let app: string | undefined;
  const apply = (args: readonly string[], positional: boolean) => {
    for (let i = 0; i < args.length; i += 1) {
      const a = args[i] as string;
      if (a === '&&' || a === ';' || a === '|') break;
      let flag = a;
      let value: string | undefined;
      const eq = a.indexOf('=');
      if (a.startsWith('--') && eq > 0) {
        flag = a.slice(0, eq);
        value = a.slice(eq + 1);
      } else if (/^-[a-z]\S+$/.test(a) && FLAGS[a.slice(0, 2)]) {
        flag = a.slice(0, 2);
        value = a.slice(2);
      }
      const key = FLAGS[flag];
      if (key) {
        if (value === undefined) value = args[++i];
        if (value === undefined) continue;
        if (key === 'bind') bind.push(value);
        else if (key === 'config') configFile = value;
        else values[key] = value;
      } else if (positional && !a.startsWith('-') && app === undefined) app = a;
    }
  };
  if (gunicornCmdArgs) apply(shellSplit(gunicornCmdArgs), false);
  // The command line wins over GUNICORN_CMD_ARGS, as in gunicorn.
  apply(words.slice(start + 1), true);
  // gunicorn's own default for workers is $WEB_CONCURRENCY, else 1.
  if (values.workers === undefined && webConcurrency !== undefined && webConcurrency !== '') values.workers = webConcurrency;
  const unknown: string[] = [];
  const num = (k: Key, dflt: number) => {
    const v = values[k];
    if (v === undefined || !NUMERIC.has(k)) return dflt;
    const n = Number(v);
    if (Number.isFinite(n) && v.trim() !== '') return n;
    unknown.push(k === 'workers' ? 'workers' : k);
    return dflt;
  };
  const threads = num('threads', 1);
  // gunicorn switches the sync worker to gthread when threads > 1.
  const workerClass = values.workerClass ?? (threads > 1 ? 'gthread' : 'sync');
  return {
    app,
    workers: num('workers', 1),
    threads,
    workerClass,
    timeoutS: num('timeoutS', 30),
    gracefulTimeoutS: num('gracefulTimeoutS', 30),
    keepAliveS: num('keepAliveS', 2),
    maxRequests: num('maxRequests', 0),
    maxRequestsJitter: num('maxRequestsJitter', 0),
    workerTmpDir: values.workerTmpDir,
    bind: bind.length ? bind : ['127.0.0.1:8000'],
    configFile,
    unknown,
  };
}

/** `sh -c "…"`, `sh -ec "…"`, `bash -lc "…"`: the script's words, as the shell would run them. */
function expandShell(argv: readonly string[]): string[] {
  const shell = argv.findIndex((w) => /(^|\/)(ba|da|z)?sh$/.test(w));
  if (shell < 0) return [...argv];
  for (let i = shell + 1; i < argv.length; i += 1) {
    const w = argv[i] as string;
    if (!/^-[a-z]+$/.test(w)) break;
    if (w.includes('c') && argv[i + 1] !== undefined) return [...argv.slice(0, shell), ...shellSplit((argv[i + 1] as string).replace(/&&|;|\|\|/g, ' ; '))];
  }
  return [...argv];
}
