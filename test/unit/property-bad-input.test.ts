/**
 * Property: whatever a compose file says, the loader either reads it or rejects it with a typed PlanError of one
 * sentence on one line (with file:line:col when the problem is at a place in the file), and whatever it reads goes
 * through the analysis and the rollout planner without an untyped exception.
 *
 * Inputs: the real plans and fixtures mutated (keys deleted, values of another type, wrong units, other forms of
 * healthcheck/deploy/command, duplicated keys, truncation, stray characters, anchors, aliases and merge keys), and
 * compose-like documents generated from scratch.
 *
 * Each document is read through loadPlan's readFile seam as a file in a temp folder that holds copies of what the
 * real files reference (nginx confs, env files), so env_file and the analysis's nginx configs are read for real.
 * The current plan is the original twin, the live fleet empty, the policy the default, the host fixed (2 CPUs, 24 GB).
 *
 * Reproducible by default (a fixed seed). FC_SEED=<n> runs another seed, FC_RUNS=<n> another total number of runs
 * (default 10 000), FC_VERBOSE=1 prints the outcomes and the kinds of rejection; on failure fast-check prints the
 * seed and the path of the shrunk counterexample, and the message the document that broke the property.
 */
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { isAlias, isMap, isPair, isScalar, isSeq, parseDocument, stringify, type Document, type Node as YamlNode } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPlan } from '../../src/plan/load-plan.js';
import type { Plan } from '../../src/plan/types.js';
import { analyzeWithConfigs } from '../../src/analysis/plan-analysis.js';
import type { Host } from '../../src/analysis/analyze-plan.js';
import { planRollout } from '../../src/rollout/plan-rollout.js';
import { ArenaError, PlanError, ValidationError } from '../../src/errors.js';

const root = path.resolve(import.meta.dirname, '..', '..');
const SEED = process.env['FC_SEED'] !== undefined ? Number(process.env['FC_SEED']) : 20_261_203;
const TOTAL_RUNS = process.env['FC_RUNS'] !== undefined ? Number(process.env['FC_RUNS']) : 10_000;
/** 60 % mutations of the real files, 40 % documents from scratch. */
const MUTATION_RUNS = Math.ceil(TOTAL_RUNS * 0.6);
const SCRATCH_RUNS = TOTAL_RUNS - MUTATION_RUNS;
/**
 * Each property takes about 20 s on an idle 2-core machine, and several times that on a busy one. A failing property
 * stops shrinking at this limit and still reports its counterexample; a passing one this slow fails rather than pass
 * with fewer runs than asked.
 */
const TIME_LIMIT_MS = 240_000;
const timeLimit = () => fc.interruptAfterTimeLimit(TIME_LIMIT_MS, { failOnInterrupt: true });
const ENV = { ARENA_PORT_PREFIX: '37' };
const GiB = 1024 ** 3;
const HOST: Host = { cpus: 2, memoryBytes: 24 * GiB, reserveMemoryBytes: GiB, source: 'flags' };

/** The real compose files, with the folder whose siblings (nginx confs, env files) they reference. */
const SOURCES = [
  'plans/docker-compose.loadbalanced.yml',
  'plans/docker-compose.loadbalanced.optimized.yml',
  'fixtures/compose/arena/docker-compose.loadbalanced.yml',
  'fixtures/compose/arena/docker-compose.loadbalanced.optimized.yml',
  'fixtures/compose/arena/broken-never-healthy.yml',
  'fixtures/compose/arena/broken-compose-invalid.yml',
  'fixtures/compose/real-world/docker-compose.yml',
];

type Seg = string | number;

/**
 * One document the mutations start from: a real file, or a real file cut down to a few of its services (the yaml
 * parser reads about 1 KB per ms here, so small documents buy many more runs in the time).
 */
interface Variant {
  readonly source: number;
  readonly label: string;
  readonly text: string;
  /** Parsed once; each run mutates a clone. */
  readonly doc: Document;
}

/** The whole file, and cut-downs keeping its top level and one or two of its services. */
function variantsOf(source: number): Variant[] {
  const rel = SOURCES[source] as string;
  const text = readFileSync(path.join(root, rel), 'utf8');
  const whole = parseDocument(text, { merge: true });
  const services = whole.get('services', true);
  if (!isMap(services)) throw new Error(`${rel} has no services mapping`);
  const names = services.items.map((p) => String((p.key as { value: unknown }).value));
  // Each service alone, and the first with the proxy (nginx's upstreams name the web services) and with the last.
  const proxy = names.find((n) => n === 'nginx' || n === 'proxy');
  const groups = [...names.map((n) => [n]), [names[0] as string, names[names.length - 1] as string], ...(proxy ? [[names[0] as string, proxy]] : [])];
  const out: Variant[] = [];
  for (const keep of groups) {
    const doc = whole.clone();
    const map = doc.get('services', true) as typeof services;
    map.items = map.items.filter((p) => keep.includes(String((p.key as { value: unknown }).value)));
    // Without the file's opening comment block: half the text of a one-service file, the same YAML.
    doc.commentBefore = null;
    const cut = doc.toString({ lineWidth: 0 });
    out.push({ source, label: `${rel} [${keep.join(', ')}]`, text: cut, doc: parseDocument(cut, { merge: true }) });
  }
  return out;
}

const WHOLE: Variant[] = SOURCES.map((rel, i) => {
  const text = readFileSync(path.join(root, rel), 'utf8');
  return { source: i, label: rel, text, doc: parseDocument(text, { merge: true }) };
});
const CUT: Variant[] = SOURCES.flatMap((_, i) => variantsOf(i));

let tmp: string;
/** Per source, where its mutations are written: a copy of the files it references (nginx confs, env files) sits beside it. */
let sourceFiles: string[];
let scratchFile: string;
let current: Plan;

beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'arena-deploy-property-'));
  sourceFiles = SOURCES.map((rel, i) => {
    const dir = path.join(tmp, `source-${i}`);
    mkdirSync(dir);
    const from = path.dirname(path.join(root, rel));
    for (const sibling of ['nginx', 'arena.env', '.env.shop', 'initdb']) {
      if (existsSync(path.join(from, sibling))) cpSync(path.join(from, sibling), path.join(dir, sibling), { recursive: true });
    }
    return path.join(dir, 'compose.yml');
  });
  const scratch = path.join(tmp, 'scratch');
  mkdirSync(scratch);
  cpSync(path.join(root, 'fixtures/compose/arena/nginx'), path.join(scratch, 'nginx'), { recursive: true });
  cpSync(path.join(root, 'fixtures/compose/arena/arena.env'), path.join(scratch, 'arena.env'));
  scratchFile = path.join(scratch, 'compose.yml');
  current = loadPlan({ files: [path.join(root, 'fixtures/compose/arena/docker-compose.loadbalanced.yml')], env: ENV });
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------------------------
// The property
// ---------------------------------------------------------------------------------------------------------------

/** What happened to one document, for the summary and for the assertions. */
type Outcome = 'rejected by the loader' | 'rejected by the analysis' | 'rejected by the planner' | 'accepted';
const outcomes = { mutations: new Map<Outcome, number>(), scratch: new Map<Outcome, number>() };
const rejections = new Map<string, number>();
const timing = { mutate: 0, load: 0, analysis: 0, plan: 0 };

class PropertyViolation extends Error {}

function violation(stage: string, err: unknown, text: string): PropertyViolation {
  const e = err instanceof Error ? err : new Error(String(err));
  const kind = e instanceof ArenaError ? e.name : `${e.constructor?.name ?? typeof err} (not an ArenaError)`;
  return new PropertyViolation(`${stage} threw ${kind}: ${JSON.stringify(e.message)}\n--- stack\n${e.stack}\n--- document (${text.length} chars)\n${text.slice(0, 4000)}`);
}

const ONE_LINE = /^[^\n\r]*\S[^\n\r]*$/;

/** file:line:col as PlanError prints it, pointing inside the file. */
function checkLocation(e: PlanError, file: string, text: string, stage: string): void {
  if (e.line === undefined) return;
  // Lines as yaml counts them (a lone CR is not a line break to it).
  const lines = text.split('\n');
  if (!(e.line >= 1 && e.line <= lines.length + 1 && (e.col ?? 1) >= 1)) throw violation(`${stage}: position ${e.line}:${e.col} outside the file (${lines.length} lines)`, e, text);
  if (!e.message.startsWith(`${e.file}:${e.line}:${e.col ?? 1}: `)) throw violation(`${stage}: message does not start with file:line:col`, e, text);
  if (e.file !== file && stage === 'loadPlan') throw violation(`${stage}: location names ${e.file}, not the plan ${file}`, e, text);
  // Where the location can be checked from the text: a merge key's error is on a line with a merge key.
  if (/: invalid YAML: (a merge key \(<<\) takes|Merge sources must)/.test(e.message) && !/<</.test(lines[e.line - 1] ?? '')) throw violation(`${stage}: a merge key error at ${e.line}:${e.col}, a line without <<`, e, text);
}

/** Plan errors that are about the whole file (or another file), not a place in it. */
const WHOLE_FILE = [
  /: the project name is empty after normalization; pass --project$/,
  // Names the nginx file, which does not exist: there is no place in it to point at.
  /: cannot read the nginx config that .+ mounts: /,
];

function checkPlanError(err: unknown, file: string, text: string, stage: string): void {
  if (!(err instanceof PlanError)) throw violation(stage, err, text);
  if (!ONE_LINE.test(err.message)) throw violation(`${stage}: the message is not one non-empty line`, err, text);
  if (err.file === undefined) throw violation(`${stage}: no file named`, err, text);
  if (err.line === undefined && !WHOLE_FILE.some((re) => re.test(err.message))) throw violation(`${stage}: no line:col`, err, text);
  checkLocation(err, file, text, stage);
  const kind = err.message.slice(err.message.indexOf(': ') + 2).replace(/"[^"]*"|\d+/g, '…').slice(0, 70);
  rejections.set(kind, (rejections.get(kind) ?? 0) + 1);
}

/** load → analysis → planner on one document; throws PropertyViolation when the property does not hold. */
function runPipeline(file: string, text: string): Outcome {
  let plan: Plan;
  const t0 = performance.now();
  try {
    // The plan through loadPlan's own readFile seam (a write per run costs more than the rest here); the files it
    // references (env files, nginx confs) from the temp folder beside `file`.
    plan = loadPlan({ files: [file], env: ENV, readFile: (f) => (f === file ? text : readFileSync(f, 'utf8')) });
  } catch (err) {
    timing.load += performance.now() - t0;
    checkPlanError(err, file, text, 'loadPlan');
    return 'rejected by the loader';
  }
  timing.load += performance.now() - t0;
  const t1 = performance.now();
  try {
    analyzeWithConfigs(plan, HOST);
  } catch (err) {
    // The only typed rejection here: an nginx config the plan mounts cannot be read or parsed.
    checkPlanError(err, file, text, 'analyzeWithConfigs');
    return 'rejected by the analysis';
  } finally {
    timing.analysis += performance.now() - t1;
  }
  const t2 = performance.now();
  try {
    planRollout({ target: plan, current, live: [], policy: {} });
  } catch (err) {
    // The only typed rejection here: x-arena-deploy.services names services the plan does not define.
    if (!(err instanceof ValidationError) || !ONE_LINE.test(err.message)) throw violation('planRollout', err, text);
    const kind = `planner: ${err.message.replace(/"[^"]*"|\(it has [^)]*\)/g, '…').slice(0, 70)}`;
    rejections.set(kind, (rejections.get(kind) ?? 0) + 1);
    return 'rejected by the planner';
  } finally {
    timing.plan += performance.now() - t2;
  }
  return 'accepted';
}

function holds(tally: Map<Outcome, number>, file: string, text: string): boolean {
  const outcome = runPipeline(file, text);
  tally.set(outcome, (tally.get(outcome) ?? 0) + 1);
  return true;
}

// ---------------------------------------------------------------------------------------------------------------
// Random values
// ---------------------------------------------------------------------------------------------------------------

const NASTY_STRINGS = [
  '', ' ', '\t', '~', 'null', 'true', 'no', '0x1F', '1e999', '-0', '.inf', '.nan', '${X}', '${X:?boom}', '${', '$$', '${X:-${Y}}', '${1BAD}',
  '5 GB', '5GBs', '-1', 'abc', '1m30', '1x', 'NONE', 'CMD', 'CMD-SHELL', 'a:b:c', '80:80:80:80', '[', '{', '*', 'web-*', '{a,b', '\u0000', 'é', '🚀',
  'line\nbreak', 'tab\there', '__proto__', 'constructor', '<<', '&a', '*a', '!!binary', '%YAML', '---', '...', 'x'.repeat(300),
];
const nastyString = fc.oneof(fc.constantFrom(...NASTY_STRINGS), fc.string({ maxLength: 20 }), fc.string({ unit: 'grapheme', maxLength: 8 }));
const nastyNumber = fc.oneof(fc.integer(), fc.double(), fc.constantFrom(0, -1, 1.5, 2 ** 53, -(2 ** 31), 1e300, Number.MAX_VALUE, Number.MIN_VALUE));
const anyValue: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    nastyNumber,
    nastyString,
    fc.array(tie('value'), { maxLength: 3 }),
    fc.dictionary(nastyString, tie('value'), { maxKeys: 3 }),
  ),
})).value;

/** A value whose type differs from `v`'s (string, number, boolean, null, list, mapping). */
function typeOf(v: unknown): string {
  return v === null || v === undefined ? 'null' : Array.isArray(v) ? 'list' : typeof v;
}
const OTHER_TYPE: Record<string, unknown[]> = {
  null: [1, 'x', [], {}],
  boolean: ['yes', 0, [true], { a: true }],
  number: ['12', true, [1], { n: 1 }, null],
  string: [42, false, ['a'], { a: 'b' }, null],
  list: ['a b', 3, { 0: 'a' }, null],
  object: ['a=b', 7, [{}], true, null],
};

/** Values that are the wrong unit or sign for a key compose parses. */
const BAD_UNITS: Record<string, unknown[]> = {
  memory: ['5 GB', '5GBs', '5 G B', '-1g', '1.5.5m', 'abc', '', 5e300, -5, '0', '5gib', '5 MB'],
  mem_limit: ['5 GB', '-1', 'lots', 1.5, '1e3m'],
  mem_reservation: ['512 mb', 'x', -1],
  cpus: ['-1', 'abc', '1,5', '', -0.5, '2.5 cpus', '0', 1e400, '∞'],
  interval: ['abc', '-1s', '1m30', '5 s', '1x', '', 0, -3, '1.5.5s', '10S'],
  timeout: ['abc', '-1s', '1h1x', 1e30, '30 seconds'],
  start_period: ['soon', '-20s', '20'],
  stop_grace_period: ['forever', '-1s', '70'],
  retries: [-1, 'three', 1.5, '3', []],
  parallelism: [-1, 1.5, 'two', 0, 1e9],
  delay: ['5x', '-1s', 'later'],
  monitor: ['-1s', 'abc', 1e12],
  replicas: [-1, 1.5, 'many', 1e21],
  max_failure_ratio: [-0.1, 'half'],
  failure_action: ['explode', 1, null],
  order: ['random', ''],
  published: ['abc', -1, 70000, '80-', '1-2-3'],
  target: [0, -1, 'http', 65536, 1.5],
};
const UNIT_KEYS = Object.keys(BAD_UNITS);
const FORM_KEYS = ['command', 'entrypoint', 'healthcheck', 'test', 'deploy', 'environment', 'ports', 'depends_on', 'env_file', 'volumes', 'networks', 'resources', 'limits'];
/** Text inserted at random places: YAML's syntax characters and constructs. */
const TOKENS = ['\t', ':', ': ', ' ', '\n', '- ', '&a ', '*a', '&b ', '*b', '<<: *a\n', '<<: ', '{', '}', '[', ']', ',', '"', "'", '#', '|', '>', '!', '!!str ', '!!map ', '%', '@', '`', '?', '---\n', '...\n', '\\', '${', '}', '$', 'x', '\r', '\u00a0', '\ufeff'];

// ---------------------------------------------------------------------------------------------------------------
// Mutations
// ---------------------------------------------------------------------------------------------------------------

type Mutation =
  | { op: 'delete'; pick: number }
  | { op: 'retype'; pick: number; value: unknown }
  | { op: 'units'; pick: number; choice: number }
  | { op: 'form'; pick: number; variant: number }
  | { op: 'anchor-alias'; pick: number; target: number }
  | { op: 'merge-key'; pick: number; target: number }
  | { op: 'duplicate-key'; pick: number }
  | { op: 'truncate'; at: number }
  | { op: 'insert'; at: number; text: string }
  | { op: 'delete-line'; pick: number }
  | { op: 'swap-lines'; a: number; b: number }
  | { op: 'indent'; pick: number; by: number };

const pick = fc.nat({ max: 1_000_000 });
const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('delete' as const), pick }),
  fc.record({ op: fc.constant('retype' as const), pick, value: anyValue }),
  { arbitrary: fc.record({ op: fc.constant('units' as const), pick, choice: pick }), weight: 2 },
  { arbitrary: fc.record({ op: fc.constant('form' as const), pick, variant: pick }), weight: 2 },
  fc.record({ op: fc.constant('anchor-alias' as const), pick, target: pick }),
  fc.record({ op: fc.constant('merge-key' as const), pick, target: pick }),
  fc.record({ op: fc.constant('duplicate-key' as const), pick }),
  fc.record({ op: fc.constant('truncate' as const), at: pick }),
  { arbitrary: fc.record({ op: fc.constant('insert' as const), at: pick, text: fc.array(fc.constantFrom(...TOKENS), { minLength: 1, maxLength: 4 }).map((a) => a.join('')) }), weight: 2 },
  fc.record({ op: fc.constant('delete-line' as const), pick }),
  fc.record({ op: fc.constant('swap-lines' as const), a: pick, b: pick }),
  fc.record({ op: fc.constant('indent' as const), pick, by: fc.integer({ min: -4, max: 4 }) }),
);

/** Every key and index path of a document's tree, not following aliases. */
function pathsOf(doc: Document): Seg[][] {
  const out: Seg[][] = [];
  const walk = (node: unknown, at: Seg[]) => {
    if (isMap(node)) {
      for (const item of node.items) {
        if (!isPair(item) || !isScalar(item.key)) continue;
        const k = item.key.value;
        if (typeof k !== 'string' && typeof k !== 'number') continue;
        out.push([...at, k]);
        if (!isAlias(item.value)) walk(item.value, [...at, k]);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => {
        out.push([...at, i]);
        if (!isAlias(item)) walk(item, [...at, i]);
      });
    }
  };
  walk(doc.contents, []);
  return out;
}

const SHELL = /^[A-Za-z0-9_./:=@%+-]+$/;
const quote = (w: string) => (SHELL.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`);

/** Another way compose allows (or almost allows) to write the same field. */
function otherForm(key: Seg, value: unknown, variant: number): unknown {
  const v = value as Record<string, unknown> | unknown[] | string | null;
  const choose = <T>(xs: T[]): T => xs[variant % xs.length] as T;
  switch (key) {
    case 'command':
    case 'entrypoint':
    case 'test':
      if (Array.isArray(v)) return choose<unknown>([v.map(String).map(quote).join(' '), v.slice(1), ['CMD-SHELL', v.map(String).join(' ')], ['NONE'], [], v.join(' ').split(''), [v]]);
      if (typeof v === 'string') return choose<unknown>([v.split(' '), ['CMD', ...v.split(' ')], ['CMD-SHELL', v], { cmd: v }, [v, 5, null]]);
      return choose<unknown>(['gunicorn app --workers 4', ['CMD']]);
    case 'healthcheck':
      return choose<unknown>([{ disable: true }, { test: 'NONE' }, { test: ['NONE'] }, 'curl -f http://localhost/', [v], { ...(v as object), test: (v as { test?: unknown } | null)?.test ?? 'true', disable: 'yes' }, { ...(v as object), interval: '30' }, null, {}]);
    case 'deploy':
      return choose<unknown>([{ resources: { limits: '2' } }, { resources: [v] }, { update_config: [] }, { replicas: '3' }, { resources: { limits: { cpus: 2, memory: 5 * GiB } } }, { ...(v as object), mode: 'global' }, 'replicated', null]);
    case 'resources':
    case 'limits':
      return choose<unknown>([{ cpus: '2.5', memory: '5g' }, { cpus: 2.5 }, [v], 'lots', { memory: { size: '5g' } }]);
    case 'environment':
      if (Array.isArray(v)) return choose<unknown>([Object.fromEntries(v.map((e) => String(e).split(/=(.*)/s).slice(0, 2))), v.join(' '), v.map((e) => ({ [String(e)]: e }))]);
      if (v && typeof v === 'object') return choose<unknown>([Object.entries(v).map(([k, x]) => `${k}=${String(x)}`), Object.fromEntries(Object.entries(v).map(([k, x]) => [k, [x]])), Object.keys(v)]);
      return choose<unknown>([['A=1', 'B'], { A: null }]);
    case 'ports':
      if (Array.isArray(v)) return choose<unknown>([v.map((p) => (typeof p === 'string' ? { target: Number(p.split(':').pop()), published: p.split(':').slice(-2, -1)[0], host_ip: '127.0.0.1' } : String((p as { target?: unknown }).target))), v.join(','), v.map((p) => `${String(p)}/udp`), 8000]);
      return choose<unknown>([['8000'], '8000:8000']);
    case 'depends_on':
      if (Array.isArray(v)) return choose<unknown>([Object.fromEntries(v.map((s) => [String(s), { condition: 'service_healthy' }])), v.join(','), Object.fromEntries(v.map((s) => [String(s), null]))]);
      if (v && typeof v === 'object') return choose<unknown>([Object.keys(v), Object.values(v)]);
      return ['redis'];
    case 'env_file':
      return choose<unknown>(['./arena.env', ['./arena.env', './missing.env'], { path: './arena.env' }, [{ path: './missing.env', required: false }], [{ path: 5 }], [{ required: true }]]);
    case 'volumes':
      return choose<unknown>([['./nginx:/etc/nginx/conf.d:ro'], ['./nginx/load-balancer.conf:/etc/nginx/nginx.conf'], [{ type: 'bind', source: './nginx', target: '/etc/nginx/conf.d' }], [{ type: 'bind', source: 5 }], ['named:/data'], 'a:b']);
    case 'networks':
      return choose<unknown>([{ arena: { aliases: ['web'] } }, { arena: { aliases: 5 } }, { arena: { aliases: { a: 1 } } }, { arena: { aliases: 'web' } }, { arena: null }, ['arena', 5], 'arena']);
    default:
      return [value];
  }
}

/** Applies one AST-level mutation to `doc`; false when it does not apply. */
function mutateTree(doc: Document, m: Mutation): boolean {
  const paths = pathsOf(doc);
  if (paths.length === 0) return false;
  const at = (n: number, among = paths) => among[n % among.length] as Seg[];
  const lastIs = (keys: string[]) => paths.filter((p) => keys.includes(String(p[p.length - 1])));
  switch (m.op) {
    case 'delete':
      doc.deleteIn(at(m.pick));
      break;
    case 'retype': {
      const p = at(m.pick);
      const old = doc.getIn(p, false);
      const oldJs = isScalar(old) ? old.value : (old as YamlNode | undefined)?.toJSON?.() ?? old;
      const value = typeOf(m.value) === typeOf(oldJs) ? (OTHER_TYPE[typeOf(oldJs)] ?? [null])[m.pick % (OTHER_TYPE[typeOf(oldJs)] ?? [null]).length] : m.value;
      doc.setIn(p, doc.createNode(value));
      break;
    }
    case 'units': {
      const among = lastIs(UNIT_KEYS);
      if (among.length === 0) return false;
      const p = at(m.pick, among);
      const choices = BAD_UNITS[String(p[p.length - 1])] as unknown[];
      doc.setIn(p, doc.createNode(choices[m.choice % choices.length]));
      break;
    }
    case 'form': {
      const among = lastIs(FORM_KEYS);
      if (among.length === 0) return false;
      const p = at(m.pick, among);
      const node = doc.getIn(p, true) as YamlNode | undefined;
      const js = node && typeof (node as { toJSON?: unknown }).toJSON === 'function' ? (node as unknown as { toJSON: () => unknown }).toJSON() : node;
      doc.setIn(p, doc.createNode(otherForm(p[p.length - 1] as Seg, js, m.variant)));
      break;
    }
    case 'anchor-alias':
    case 'merge-key': {
      // Anchor one node, refer to it from another place: as a value (may be circular), or as a merge source.
      const source = at(m.pick);
      const node = doc.getIn(source, true) as YamlNode | undefined;
      if (!(isScalar(node) || isMap(node) || isSeq(node))) return false;
      const alias = doc.createAlias(node, 'fuzz');
      const dest = at(m.target);
      if (m.op === 'anchor-alias') doc.setIn(dest, alias);
      else {
        const parent = doc.getIn(dest.slice(0, -1), true);
        const map = isMap(parent) ? parent : isMap(doc.getIn(dest, true)) ? doc.getIn(dest, true) : undefined;
        if (!isMap(map)) return false;
        map.items.unshift(doc.createPair('<<', alias) as never);
      }
      break;
    }
    default:
      return false;
  }
  return true;
}

/** Applies one text-level mutation. */
function mutateText(text: string, m: Mutation): string | undefined {
  const lines = text.split('\n');
  const line = (n: number) => n % Math.max(lines.length, 1);
  switch (m.op) {
    case 'duplicate-key': {
      // A line with a key, repeated right after itself: the same key twice in one mapping.
      const keyed = lines.map((l, i) => [l, i] as const).filter(([l]) => /^\s*[\w.-]+:/.test(l));
      if (keyed.length === 0) return undefined;
      const [l, i] = keyed[m.pick % keyed.length] as readonly [string, number];
      const dup = /:\s*$/.test(l) ? `${l} {}` : l;
      return [...lines.slice(0, i + 1), dup.replace(/^(\s*)- /, '$1  '), ...lines.slice(i + 1)].join('\n');
    }
    case 'truncate':
      return text.slice(0, m.at % (text.length + 1));
    case 'insert': {
      const at = m.at % (text.length + 1);
      return text.slice(0, at) + m.text + text.slice(at);
    }
    case 'delete-line':
      return lines.filter((_, i) => i !== line(m.pick)).join('\n');
    case 'swap-lines': {
      const a = line(m.a);
      const b = line(m.b);
      const out = [...lines];
      [out[a], out[b]] = [lines[b] as string, lines[a] as string];
      return out.join('\n');
    }
    case 'indent': {
      const i = line(m.pick);
      const l = lines[i] as string;
      const out = [...lines];
      out[i] = m.by >= 0 ? ' '.repeat(m.by) + l : l.replace(new RegExp(`^ {0,${-m.by}}`), '');
      return out.join('\n');
    }
    default:
      return undefined;
  }
}

const TREE_OPS = new Set<Mutation['op']>(['delete', 'retype', 'units', 'form', 'anchor-alias', 'merge-key']);

/** The tree mutations on a clone of `doc` (one parse, one print), then the text mutations on the printed text. */
function applyMutations(start: { text: string; doc?: Document | undefined }, mutations: readonly Mutation[]): string {
  const t0 = performance.now();
  let out = start.text;
  const tree = mutations.filter((m) => TREE_OPS.has(m.op));
  if (tree.length > 0) {
    const doc = start.doc ? start.doc.clone() : parseDocument(out, { merge: true });
    if (doc.errors.length === 0) {
      let changed = false;
      for (const m of tree) {
        try {
          changed = mutateTree(doc, m) || changed;
        } catch {
          // The generator's own YAML library refused the edit (a path through a scalar): skip it.
        }
      }
      try {
        if (changed) out = doc.toString({ lineWidth: 0 });
      } catch {
        // It cannot print what it was given (an alias it cannot resolve): keep the text as it was.
      }
    }
  }
  for (const m of mutations) {
    if (TREE_OPS.has(m.op)) continue;
    out = mutateText(out, m) ?? out;
  }
  timing.mutate += performance.now() - t0;
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Documents from scratch
// ---------------------------------------------------------------------------------------------------------------

/**
 * A compose-like document. `wild` = 0: every field has a value of the right shape (plausible numbers, units and forms,
 * though not always sensible ones); `wild` > 0: each field is, with weight `wild` against 20, a wrong value from a list
 * of near misses, or anything at all.
 */
function composeArb(wild: number): fc.Arbitrary<Record<string, unknown>> {
  const field = <T>(good: fc.Arbitrary<T>, bad: readonly unknown[] = []) =>
    wild === 0 ? good : fc.oneof({ arbitrary: good as fc.Arbitrary<unknown>, weight: 20 }, { arbitrary: bad.length ? fc.constantFrom(...bad) : anyValue, weight: wild }, { arbitrary: anyValue, weight: wild });
  const duration = field(fc.oneof(fc.constantFrom('30s', '1m30s', '500ms', '0s', '1s', '1.5h', '100', '2m', '10us'), fc.nat({ max: 1000 })), ['abc', '-1s', '5x', '', '5 s', '1m30', -1, true]);
  const size = field(fc.oneof(fc.constantFrom('5120M', '5g', '512m', '1gb', '2GiB', '1073741824', '5 GB', '0', '1.5g'), fc.nat()), ['-1g', 'abc', '', '5 G B', '5GBs', -5, [], {}]);
  const cpus = field(fc.oneof(fc.constantFrom('2.5', '0.3125', '1', '0', '64'), fc.double({ min: 0, max: 100, noNaN: true })), ['-1', 'abc', '', '1,5', -0.5, false]);
  const image = field(fc.constantFrom('arena-deploy/backend:fixture', 'arena-deploy/nginx:fixture', 'redis:7', 'postgres:16', 'nginx', 'x/y:z@sha256:00'), ['', 5, ['a'], null]);
  const gunicorn = fc
    .record({
      workers: fc.oneof(fc.nat({ max: 64 }).map(String), fc.constantFrom('$$N', '${W:-4}', 'many', '')),
      threads: fc.oneof(fc.nat({ max: 16 }).map(String), fc.constantFrom('x', '-1')),
      klass: fc.constantFrom('gthread', 'sync', 'gevent', 'uvicorn.workers.UvicornWorker'),
      timeout: fc.oneof(fc.nat({ max: 1000 }).map(String), fc.constantFrom('1e9', 'abc')),
      extra: fc.array(fc.constantFrom('--max-requests', '1000', '--max-requests-jitter', '--worker-tmp-dir', '/dev/shm', '-c', 'conf.py', '--keep-alive', '75', '-w', '--threads=2', '-k', '&&', ';', '-b', '--bind'), { maxLength: 5 }),
    })
    .map((g) => ['gunicorn', 'app.wsgi', '--workers', g.workers, '--threads', g.threads, '--worker-class', g.klass, '--timeout', g.timeout, ...g.extra]);
  const command = field(fc.oneof(gunicorn, gunicorn.map((a) => a.join(' ')), gunicorn.map((a) => ['sh', '-c', a.join(' ')]), gunicorn.map((a) => ['python', '-m', ...a]), fc.constantFrom('redis-server', ['nginx', '-g', 'daemon off;'], "sh -c 'unterminated")), [[{}], 5, { cmd: 'x' }]);
  const healthcheck = field(
    fc.record(
      {
        test: field(fc.constantFrom(['CMD', 'curl', '-f', '--max-time', '25', 'http://localhost:8000/health/'], 'wget -T 5 -q -O- http://localhost/', ['NONE'], ['CMD-SHELL', 'curl -m 40 x'], ['CMD'], []), [5, [1, 2], { cmd: 'x' }]),
        interval: duration, timeout: duration, retries: field(fc.nat({ max: 10 }), [-1, 1.5, 'three']), start_period: duration, disable: field(fc.boolean(), ['yes', 1]),
      },
      { requiredKeys: [] },
    ),
    ['curl -f x', ['CMD', 'x'], true],
  );
  const limits = field(fc.record({ cpus, memory: size }, { requiredKeys: [] }), ['2', [1]]);
  const deploy = field(
    fc.record(
      {
        resources: field(fc.record({ limits, reservations: limits }, { requiredKeys: [] }), ['lots']),
        update_config: field(fc.record({ parallelism: field(fc.nat({ max: 8 }), [-1, 1.5, 'two']), delay: duration, monitor: duration, failure_action: field(fc.constantFrom('rollback', 'pause', 'continue'), ['explode']), order: field(fc.constantFrom('stop-first', 'start-first'), ['random']), max_failure_ratio: field(fc.double({ min: 0, max: 1, noNaN: true }), [-1, 'half']) }, { requiredKeys: [] }), [[], 'fast']),
        replicas: field(fc.nat({ max: 5 }), [-1, 1.5, 'many']),
        mode: fc.constantFrom('replicated', 'global'),
      },
      { requiredKeys: [] },
    ),
    ['replicated', [{}]],
  );
  const goodName = fc.oneof(fc.constantFrom('web-1', 'web-2', 'web-10', 'nginx', 'redis', 'db', 'worker', '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'x-arena', '9', 'a.b'), fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,9}$/));
  const name = wild === 0 ? goodName : fc.oneof({ arbitrary: goodName, weight: 30 }, { arbitrary: fc.constantFrom('', 'web 1', 'web\n2', 'wéb', 'a/b', '<<'), weight: wild }, { arbitrary: fc.string({ maxLength: 10 }), weight: wild });
  const environment = field(
    fc.oneof(
      fc.dictionary(fc.oneof(fc.constantFrom('GUNICORN_CMD_ARGS', 'WEB_CONCURRENCY', 'PASSWORD', 'REDIS_URL', 'DATABASE_URL', '__proto__', 'constructor'), fc.string({ maxLength: 8 })), fc.oneof(fc.string({ maxLength: 30 }), fc.constantFrom('--workers=3 --threads 2', 'redis://:pw@redis:6379', '$$HOME', '${X:-default}', '${UNSET}'), fc.integer(), fc.boolean(), fc.constant(null)), { maxKeys: 4 }),
      fc.array(fc.oneof(fc.constantFrom('A=1', 'B', 'GUNICORN_CMD_ARGS=--workers 2', 'WEB_CONCURRENCY=$${N}', '=x', 'C=${C:-d}'), fc.string({ maxLength: 10 })), { maxLength: 4 }),
    ),
    ['A=1', 5, [{ A: 1 }], { A: [1] }, { A: { b: 1 } }, { A: '${X:?missing}' }, ['D=${D:?}'], ['E=${E'], { F: '${F:+${}' }],
  );
  const port = fc.oneof(
    fc.constantFrom('8000', '127.0.0.1:8001:8000', '80:80/udp', '[::1]:80:80', '8000-8010:8000', '${ARENA_PORT_PREFIX:-80}01:8000', ':8000'),
    fc.integer({ min: 1, max: 65535 }),
    fc.record({ target: fc.integer({ min: 1, max: 65535 }), published: fc.constantFrom('8000', 8000, '8000-8001'), host_ip: fc.constant('127.0.0.1'), protocol: fc.constantFrom('tcp', 'udp') }, { requiredKeys: ['target'] }),
  );
  const ports = field(fc.array(field(port, ['a:b', '99999', 'http', 0, { published: 80 }, { target: 'x' }, [80]]), { maxLength: 3 }), ['8000:8000', { target: 80 }]);
  const dependsOn = field(fc.oneof(fc.array(name, { maxLength: 3 }), fc.dictionary(name, fc.record({ condition: fc.constantFrom('service_healthy', 'service_started') }), { maxKeys: 3 })), ['web-1', 5]);
  const volume = fc.oneof(
    fc.constantFrom('./nginx/load-balancer.conf:/etc/nginx/conf.d/default.conf:ro', './nginx/load-balancer-optimized.conf:/etc/nginx/conf.d/default.conf', './nginx:/etc/nginx/conf.d', 'data:/data', '/data', '~/x:/y', './arena.env:/app/.env:ro'),
    fc.record({ type: fc.constantFrom('bind', 'volume', 'tmpfs'), source: fc.constantFrom('./nginx', './nginx/load-balancer.conf', 'data'), target: fc.constantFrom('/etc/nginx/conf.d', '/etc/nginx/conf.d/default.conf', '/x'), read_only: fc.boolean() }, { requiredKeys: ['type', 'target'] }),
  );
  const volumes = field(fc.array(field(volume, ['./missing.conf:/etc/nginx/nginx.conf', './arena.env:/etc/nginx/x.conf', '.:/etc/nginx', { type: 'bind', source: 7 }, { type: 'bind' }, 5]), { maxLength: 3 }), ['a:b', { a: 1 }]);
  const networks = field(fc.oneof(fc.array(fc.constantFrom('arena', 'default'), { maxLength: 2 }), fc.dictionary(fc.constantFrom('arena', 'default'), fc.option(fc.record({ aliases: fc.array(fc.oneof(name, fc.constantFrom('api', 'backend')), { maxLength: 2 }) }, { requiredKeys: [] })), { maxKeys: 2 })), [{ arena: { aliases: 5 } }, { arena: { aliases: 'web' } }, { arena: { aliases: [{}] } }, 'arena', { arena: 5 }]);
  // Keys compose does not know, among them the names of Object.prototype's members.
  const extraKeys = fc.dictionary(fc.constantFrom('constructor', 'toString', 'valueOf', 'hasOwnProperty', 'x-note', 'init', 'tty', 'working_dir'), anyValue, { maxKeys: 2 });
  const service = field(
    fc.tuple(extraKeys, fc.record(
      {
        image, build: field(fc.constantFrom('.', { context: '.' })), extends: field(fc.constantFrom('web-1', { service: 'web-1' })),
        command, entrypoint: field(fc.constantFrom('/entrypoint.sh', ['sh', '-ec'], ['bash', '-lc', 'gunicorn app -w 3'], ['python', '-m'])),
        environment,
        env_file: field(fc.constantFrom('./arena.env', ['./arena.env'], [{ path: './missing.env', required: false }], [{ path: './arena.env', required: 'false' }], { path: './arena.env' }), ['./missing.env', [{ path: 5 }], [{ required: true }], '/']),
        healthcheck, deploy, ports, depends_on: dependsOn, networks, volumes,
        container_name: field(fc.oneof(name, fc.constantFrom('backend'))), profiles: field(fc.array(fc.constantFrom('debug', '*', 'prod'), { maxLength: 2 }), ['debug']),
        stop_grace_period: duration, restart: field(fc.constantFrom('always', 'unless-stopped', 'no', 'on-failure:3')), mem_limit: size, mem_reservation: size, cpus, scale: field(fc.nat({ max: 3 }), [-1, 'x']),
        labels: field(fc.dictionary(fc.string({ maxLength: 6 }), fc.string({ maxLength: 6 }), { maxKeys: 2 })),
      },
      { requiredKeys: [] },
    )).map(([extra, known]) => ({ ...(wild === 0 ? {} : extra), ...known })),
    ['web', ['image: x']],
  );
  const extension = fc.record(
    {
      services: field(fc.constantFrom('web-*', 'web-1', 'web-{1,2}', 'nginx,web-*', '*', 'api-*', '{', 'web-?'), ['', 5, ['web-*']]),
      stateful: field(fc.array(name, { maxLength: 2 }), ['redis']),
      host: field(fc.record({ cpus: field(fc.constantFrom(2, 16, '0.5', 1e6)), memory: size, 'reserve-memory': size }, { requiredKeys: [] }), ['big']),
      'memory-model': field(fc.record({ base: size, 'per-worker': size, overhead: size }, { requiredKeys: [] }), [300]),
    },
    { requiredKeys: [] },
  );
  return fc.record(
    {
      name: field(fc.constantFrom('arena', 'Arena Prod', 'other-project', '${PROJECT:-arena}', 'a.b'), ['', '-_-', 5, ['x']]),
      // Mostly web-N names: without one, the default rolled glob web-* matches nothing and the planner refuses.
      services: field(fc.dictionary(fc.oneof({ arbitrary: fc.constantFrom('web-1', 'web-2', 'web-3'), weight: 2 }, { arbitrary: name, weight: 1 }), service, { minKeys: 1, maxKeys: 2 }), [[], 'web', {}]),
      'x-arena-deploy': wild === 0 ? extension : fc.oneof({ arbitrary: extension, weight: 9 }, { arbitrary: fc.record({ surprise: anyValue }), weight: 1 }, { arbitrary: anyValue, weight: 1 }),
      'x-common': fc.constant({ image: 'arena-deploy/backend:fixture' }),
      networks: field(fc.constant({ arena: { driver: 'bridge' } })),
      volumes: field(fc.constantFrom({ 'redis-data': null }, { data: {} }), [['redis-data'], 'redis-data']),
    },
    { requiredKeys: ['services'] },
  );
}

/** Printed as block YAML, flow YAML or JSON, then sometimes mutated like the real files. */
const scratchText = fc
  .tuple(
    fc.oneof(composeArb(0), composeArb(1)),
    fc.constantFrom('block', 'flow', 'json'),
    fc.oneof({ arbitrary: fc.constant([] as Mutation[]), weight: 2 }, { arbitrary: fc.array(mutationArb, { minLength: 1, maxLength: 2 }), weight: 1 }),
  )
  .map(([doc, style, mutations]) => {
    let text: string;
    try {
      text = style === 'json' ? JSON.stringify(doc, null, 2) : stringify(doc, { collectionStyle: style === 'flow' ? 'flow' : 'any', lineWidth: 0 });
    } catch {
      text = JSON.stringify(doc);
    }
    return applyMutations({ text }, mutations);
  });

// ---------------------------------------------------------------------------------------------------------------

describe('bad input through load, analysis and planning', () => {
  it(`mutated real compose files (${MUTATION_RUNS} runs, seed ${SEED})`, () => {
    // Mostly the cut-down files; the whole files now and then.
    const variant = fc.oneof({ arbitrary: fc.nat().map((n) => CUT[n % CUT.length] as Variant), weight: 60 }, { arbitrary: fc.nat().map((n) => WHOLE[n % WHOLE.length] as Variant), weight: 1 });
    const arb = fc.tuple(variant, fc.array(mutationArb, { minLength: 1, maxLength: 4 }));
    fc.assert(
      fc.property(arb, ([v, mutations]) => holds(outcomes.mutations, sourceFiles[v.source] as string, applyMutations(v, mutations))),
      { seed: SEED, numRuns: MUTATION_RUNS, plugins: [timeLimit()] },
    );
  }, TIME_LIMIT_MS + 60_000);

  it(`compose-like documents from scratch (${SCRATCH_RUNS} runs, seed ${SEED + 1})`, () => {
    fc.assert(fc.property(scratchText, (text) => holds(outcomes.scratch, scratchFile, text)), { seed: SEED + 1, numRuns: SCRATCH_RUNS, plugins: [timeLimit()] });
  }, TIME_LIMIT_MS + 60_000);

  it('saw both outcomes in each: documents the loader rejects, and documents that go all the way through', () => {
    // A generator that only produced unreadable text would prove nothing about the analysis and the planner.
    if (process.env['FC_VERBOSE']) console.log([...rejections].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${String(n).padStart(5)}  ${k}`).join('\n'));
    for (const [name, tally, runs] of [['mutations', outcomes.mutations, MUTATION_RUNS], ['scratch', outcomes.scratch, SCRATCH_RUNS]] as const) {
      if (process.env['FC_VERBOSE']) console.log(name, Object.fromEntries(tally), timing);
      expect(tally.get('rejected by the loader') ?? 0, name).toBeGreaterThan(runs * 0.1);
      expect(tally.get('accepted') ?? 0, name).toBeGreaterThan(runs * 0.1);
    }
    // Every run mutated a clone: the parsed starting documents are as they were (else a replay would differ).
    for (const v of [...WHOLE, ...CUT]) expect(v.doc.toString({ lineWidth: 0 }), v.label).toBe(parseDocument(v.text, { merge: true }).toString({ lineWidth: 0 }));
  });
});
