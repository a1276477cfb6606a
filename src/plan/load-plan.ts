/** Reads compose files into a typed Plan: YAML with positions, merge keys, interpolation, several `-f` files. */
import { readFileSync, statSync } from 'node:fs';

/** Why a file could not be read, in words. */
export function readFailure(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'does not exist';
  if (code === 'EISDIR') return 'is a directory';
  if (code === 'ENOTREG') return 'is not a regular file';
  if (code === 'EACCES' || code === 'EPERM') return 'cannot be read: permission denied';
  return `cannot be read (${code ?? (e as Error).message})`;
}

/** Reads a plan, env file or config: regular files only (a FIFO or /dev/zero would hang the loader, or fill memory). */
export function readRegularFile(file: string): string {
  const st = statSync(file);
  if (!st.isFile()) throw Object.assign(new Error(`${file} is not a regular file`), { code: st.isDirectory() ? 'EISDIR' : 'ENOTREG' });
  return readFileSync(file, 'utf8');
}
import path from 'node:path';
import os from 'node:os';
import { LineCounter, parseDocument, isMap, isSeq, isScalar, isAlias, isPair, type Node as YamlNode, type Document } from 'yaml';
import { PlanError } from '../errors.js';
import { interpolate, parseDotEnv, InterpolationError, type Environment } from './interpolate.js';
import { parseCpus, parseDuration, parseSize } from './units.js';
import { isSecretKey } from '../util/redact.js';
import { shellSplit } from '../util/shell-split.js';
import type { ArenaExtension, BindMount, EnvVar, Healthcheck, Plan, PortMapping, ServicePlan, SourcePos, UpdateConfig } from './types.js';

/** How to read a plan. `readFile` is the only I/O, injectable for tests. */
export interface LoadPlanOptions {
  readonly files: readonly string[];
  readonly projectName?: string | undefined;
  readonly projectDirectory?: string | undefined;
  readonly env?: Environment;
  readonly readFile?: (file: string) => string;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type JsonMap = { [k: string]: Json };
type Positions = Map<string, SourcePos>;

const SERVICE_NAME = /^[a-zA-Z0-9._-]+$/;
const URL_CREDENTIALS = /:\/\/[^/\s:@]*:[^@/\s]+@/;
const ARENA_KEYS = new Set(['services', 'stateful', 'host', 'memory-model']);
const HOST_KEYS = new Set(['cpus', 'memory', 'reserve-memory']);
const MODEL_KEYS = new Set(['base', 'per-worker', 'overhead']);

/** Loads and normalizes a plan from its files; throws PlanError with file:line:col on bad input. */
export function loadPlan(options: LoadPlanOptions): Plan {
  if (options.files.length === 0) throw new PlanError('no compose file given');
  const readFile = options.readFile ?? readRegularFile;
  const files = options.files.map((f) => path.resolve(f));
  const projectDirectory = path.resolve(options.projectDirectory ?? path.dirname(files[0] as string));
  const baseEnv = options.env ?? process.env;
  const dotEnvPath = path.join(projectDirectory, '.env');
  let dotEnv: Record<string, string> = {};
  const dotEnvText = tryRead(readFile, dotEnvPath);
  if (dotEnvText !== undefined) dotEnv = parseDotEnv(dotEnvText, baseEnv);
  // The process environment wins over .env, as in compose.
  const env: Environment = { ...dotEnv, ...baseEnv };

  const positions: Positions = new Map();
  let merged: JsonMap = {};
  for (const file of files) {
    let text: string;
    try {
      text = readFile(file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory, not a file' : code === 'EACCES' ? 'permission denied' : (err as Error).message;
      throw new PlanError(`cannot read compose file: ${why}`, { file }, { cause: err });
    }
    const doc = parseYaml(file, text, positions);
    const data = interpolateTree(doc, env, file, positions, []);
    if (data === null || data === undefined) continue;
    if (typeof data !== 'object' || Array.isArray(data)) throw new PlanError('a compose file must be a mapping at the top level', positions.get('') ?? { file, line: 1, col: 1 });
    merged = mergeTop(merged, data);
  }

  const services = merged['services'];
  if (services === undefined || services === null) throw new PlanError('the plan defines no services', positions.get('services') ?? { file: files[0] as string, line: 1, col: 1 });
  if (typeof services !== 'object' || Array.isArray(services)) throw fieldError('services', 'must be a mapping', positions, files[0] as string);
  if (Object.keys(services).length === 0) throw new PlanError('the plan defines no services', positions.get('services') ?? { file: files[0] as string, line: 1, col: 1 });

  const extension = readExtension(merged['x-arena-deploy'], positions, files[0] as string);
  const nameField = merged['name'];
  const projectName = options.projectName ?? env['COMPOSE_PROJECT_NAME'] ?? (typeof nameField === 'string' && nameField !== '' ? nameField : undefined);
  const project = normalizeProjectName(projectName ?? path.basename(projectDirectory));
  if (project === '') throw new PlanError('the project name is empty after normalization; pass --project', { file: files[0] as string });

  // No prototype: a service named constructor or toString is looked up like any other, never inherited.
  const out: Record<string, ServicePlan> = Object.create(null) as Record<string, ServicePlan>;
  // Services behind inactive profiles are not part of the plan, as in `docker compose config`.
  const active = new Set((env['COMPOSE_PROFILES'] ?? '').split(',').map((p) => p.trim()).filter(Boolean));
  for (const [name, raw] of Object.entries(services)) {
    // compose's own rule (its schema); a name with a newline or a space would also break every message that names it.
    if (!SERVICE_NAME.test(name)) throw new PlanError(`services: ${printable(JSON.stringify(name))} is not a valid service name (compose allows only letters, digits, ".", "_" and "-")`, posNear(`services.${name}`, positions) ?? { file: files[0] as string, line: 1, col: 1 });
    const profiles = isMapping(raw) && Array.isArray(raw['profiles']) ? raw['profiles'].map(String) : [];
    if (profiles.length && !profiles.some((p) => active.has(p) || p === '*')) continue;
    out[name] = normalizeService(name, raw, { positions, projectDirectory, readFile, env, file: files[0] as string });
  }
  const volumesField = merged['volumes'];
  const volumes = volumesField && typeof volumesField === 'object' && !Array.isArray(volumesField) ? Object.keys(volumesField) : [];
  return {
    project,
    projectFromFile: options.projectName === undefined && typeof nameField === 'string',
    projectDirectory,
    files,
    services: out,
    volumes,
    extension,
  };
}

/** compose's own rule: lowercase letters, digits, dashes and underscores. */
export function normalizeProjectName(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9_-]/g, '').replace(/^[-_]+/, '');
}

function tryRead(readFile: (f: string) => string, file: string): string | undefined {
  try {
    return readFile(file);
  } catch {
    return undefined;
  }
}

function parseYaml(file: string, text: string, positions: Positions): Document {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, merge: true, prettyErrors: false, uniqueKeys: true });
  const first = doc.errors[0];
  if (first) {
    const at = lineCounter.linePos(first.pos[0]);
    const message = first.message.split('\n')[0]?.replace(/ at line \d+, column \d+:?$/, '') ?? 'invalid YAML';
    // yaml quotes the source in some messages ("Not a YAML token: …"), a lone CR or a tab included.
    throw new PlanError(`invalid YAML: ${printable(message)}`, { file, line: at.line, col: at.col });
  }
  recordPositions(doc.contents as YamlNode | null, '', file, lineCounter, positions, doc);
  return doc;
}

function recordPositions(node: YamlNode | null, at: string, file: string, lc: LineCounter, positions: Positions, doc: Document): void {
  if (!node) return;
  if (node.range) {
    const p = lc.linePos(node.range[0]);
    if (!positions.has(at) || at === '') positions.set(at, { file, line: p.line, col: p.col });
  }
  if (isMap(node)) {
    for (const item of node.items) {
      if (!isPair(item)) continue;
      if (isMap(item.key) || isSeq(item.key)) {
        // JavaScript objects cannot have them (yaml would stringify them with a warning), and compose refuses them.
        const p = lc.linePos((item.key as YamlNode).range?.[0] ?? node.range?.[0] ?? 0);
        throw new PlanError('invalid YAML: a mapping key must be a plain value, not a mapping or a list', { file, line: p.line, col: p.col });
      }
      // yaml's rule for a merge key: a plain (or tagged) `<<`.
      if (isScalar(item.key) && (!item.key.type || item.key.type === 'PLAIN') && (item.key.value === '<<' || (typeof item.key.value === 'symbol' && item.key.value.description === '<<'))) {
        // yaml checks merge sources only when it builds the JavaScript values, and then says nowhere where.
        const source = item.value as YamlNode | null;
        checkMergeSource(source, (item.key as YamlNode).range?.[0] ?? 0, doc, file, lc);
        // An inline mapping merged in: its keys' positions are those of the merged values, unless written here too.
        const merged: Positions = new Map();
        if (source && !isAlias(source)) recordPositions(source, at, file, lc, merged, doc);
        if (isMap(source)) for (const [k, p] of merged) if (k !== at && !positions.has(k)) positions.set(k, p);
        continue;
      }
      const key = isScalar(item.key) ? String(item.key.value) : undefined;
      if (key === undefined || key === '<<') continue;
      const child = at === '' ? key : `${at}.${key}`;
      const keyNode = item.key as YamlNode;
      if (keyNode.range) {
        const p = lc.linePos(keyNode.range[0]);
        positions.set(child, { file, line: p.line, col: p.col });
      }
      const value = item.value as YamlNode | null;
      if (value && !isAlias(value)) recordPositions(value, child, file, lc, positions, doc);
      if (value && value.range && (isScalar(value) || isAlias(value))) {
        const p = lc.linePos(value.range[0]);
        positions.set(`${child}#value`, { file, line: p.line, col: p.col });
      }
    }
  } else if (isSeq(node)) {
    node.items.forEach((item, i) => {
      const child = `${at}.${i}`;
      const n = item as YamlNode | null;
      if (n && n.range) {
        const p = lc.linePos(n.range[0]);
        positions.set(child, { file, line: p.line, col: p.col });
        positions.set(`${child}#value`, { file, line: p.line, col: p.col });
      }
      if (n && !isAlias(n)) recordPositions(n, child, file, lc, positions, doc);
    });
  }
}

/** A merge key (`<<`) takes a mapping, an alias of one, or a list of those, as yaml requires when it merges. */
function checkMergeSource(value: YamlNode | null, keyOffset: number, doc: Document, file: string, lc: LineCounter): void {
  const resolve = (n: unknown) => (isAlias(n) ? n.resolve(doc) : n);
  const source = resolve(value);
  const ok = isMap(source) || (isSeq(source) && source.items.every((it) => isMap(resolve(it))));
  if (ok) return;
  const p = lc.linePos(keyOffset);
  throw new PlanError('invalid YAML: a merge key (<<) takes a mapping, an alias of one, or a list of them', { file, line: p.line, col: p.col });
}

function interpolateTree(doc: Document, env: Environment, file: string, positions: Positions, _path: string[]): Json {
  let js: unknown;
  try {
    js = doc.toJS({ maxAliasCount: 1000 });
  } catch (err) {
    throw new PlanError(`invalid YAML: ${printable((err as Error).message)}`, { file, line: 1, col: 1 }, { cause: err });
  }
  // Mappings and lists being walked: an alias to one of them from inside it makes a circular tree.
  const ancestors = new Set<object>();
  const walk = (value: unknown, at: string): Json => {
    if (typeof value === 'string') {
      try {
        return interpolate(value, env);
      } catch (err) {
        // The message names the path, never the value: it may hold a secret.
        // A value merged in with `<<` has no position of its own: the nearest enclosing one that has.
        if (err instanceof InterpolationError) throw new PlanError(printable(`${at || 'the document'}: ${err.message}`), posNear(at, positions) ?? positions.get('') ?? { file, line: 1, col: 1 });
        throw err;
      }
    }
    if (value && typeof value === 'object' && !(value instanceof Date)) {
      if (ancestors.has(value)) throw new PlanError(`invalid YAML: ${printable(at)} is an alias of a mapping or list that contains it (a circular reference)`, posNear(at, positions) ?? { file, line: 1, col: 1 });
      ancestors.add(value);
      try {
        if (Array.isArray(value)) return value.map((v, i) => walk(v, `${at}.${i}`));
        const out: JsonMap = {};
        for (const [k, v] of Object.entries(value)) setKey(out, k, walk(v, at === '' ? k : `${at}.${k}`));
        return out;
      } finally {
        ancestors.delete(value);
      }
    }
    if (value instanceof Date) return value.toISOString();
    if (value === undefined) return null;
    return value as Json;
  };
  return walk(js, '');
}

/** `o[k] = v`, except that a key named __proto__ is a key like any other instead of replacing o's prototype. */
function setKey<T>(o: Record<string, T>, k: string, v: T): void {
  if (k === '__proto__') Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
  else o[k] = v;
}

function isMapping(v: Json | undefined): v is JsonMap {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function mergeTop(base: JsonMap, over: JsonMap): JsonMap {
  const out: JsonMap = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    if (k === 'services' && isMapping(b) && isMapping(v)) {
      const services: JsonMap = { ...b };
      for (const [name, svc] of Object.entries(v)) {
        const prev = services[name];
        setKey(services, name, isMapping(prev) && isMapping(svc) ? mergeService(prev, svc) : svc);
      }
      setKey(out, k, services);
    } else if (isMapping(b) && isMapping(v)) {
      setKey(out, k, deepMerge(b, v));
    } else {
      setKey(out, k, v);
    }
  }
  return out;
}

const CONCAT_KEYS = new Set(['ports', 'expose', 'external_links', 'dns', 'dns_search', 'tmpfs', 'env_file']);
const REPLACE_KEYS = new Set(['command', 'entrypoint']);

/** compose's merge of one service over another (override files). */
function mergeService(base: JsonMap, over: JsonMap): JsonMap {
  const out: JsonMap = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    if (REPLACE_KEYS.has(k)) setKey(out, k, v);
    else if (k === 'environment' || k === 'labels') setKey(out, k, { ...listToMap(b), ...listToMap(v) });
    else if (CONCAT_KEYS.has(k)) {
      const list = [...asList(b), ...asList(v)];
      setKey(out, k, list.filter((item, i) => list.findIndex((o) => JSON.stringify(o) === JSON.stringify(item)) === i));
    } else if (k === 'volumes' && Array.isArray(b) && Array.isArray(v)) {
      const byTarget = new Map<string, Json>();
      for (const item of [...b, ...v]) byTarget.set(volumeTarget(item), item);
      setKey(out, k, [...byTarget.values()]);
    } else if (k === 'healthcheck' && isMapping(b) && isMapping(v)) setKey(out, k, { ...b, ...v });
    else if (isMapping(b) && isMapping(v)) setKey(out, k, deepMerge(b, v));
    else setKey(out, k, v);
  }
  return out;
}

function deepMerge(base: JsonMap, over: JsonMap): JsonMap {
  const out: JsonMap = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    setKey(out, k, isMapping(b) && isMapping(v) ? deepMerge(b, v) : v);
  }
  return out;
}

function asList(v: Json | undefined): Json[] {
  if (v === undefined || v === null) return [];
  return Array.isArray(v) ? v : [v];
}

function listToMap(v: Json | undefined): Record<string, Json> {
  if (isMapping(v)) return v;
  const out: Record<string, Json> = {};
  for (const item of asList(v)) {
    const s = String(item);
    const eq = s.indexOf('=');
    if (eq < 0) setKey(out, s, null);
    else setKey(out, s.slice(0, eq), s.slice(eq + 1));
  }
  return out;
}

function volumeTarget(item: Json): string {
  if (isMapping(item)) return String(item['target'] ?? '');
  const parts = String(item).split(':');
  return parts.length >= 2 ? (parts[1] as string) : (parts[0] as string);
}

interface Ctx {
  readonly positions: Positions;
  readonly projectDirectory: string;
  readonly readFile: (f: string) => string;
  readonly env: Environment;
  readonly file: string;
}

function fieldError(at: string, problem: string, positions: Positions, file: string): PlanError {
  return new PlanError(printable(`${at}: ${problem}`), posNear(at, positions) ?? { file });
}

/** A value as an error message shows it: JSON, YAML's words for infinite numbers (JSON has none), long ones cut. */
function shown(v: Json | undefined): string {
  const text = typeof v === 'number' && !Number.isFinite(v) ? (Number.isNaN(v) ? '.nan' : v > 0 ? '.inf' : '-.inf') : JSON.stringify(v) ?? 'nothing';
  return text.length > 80 ? `${text.slice(0, 79)}…` : text;
}

/** Control characters (a key or a value with a newline, a tab, a CR) written as escapes: an error stays one line. */
export function printable(text: string): string {
  const named: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };
  return text.replace(/[\u0000-\u001f\u007f]/g, (c) => named[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** The position of a path, else of its nearest ancestor that has one (`env_file.0` of a one-string env_file). */
function posNear(at: string, positions: Positions): SourcePos | undefined {
  for (let p = at; p !== ''; p = p.includes('.') ? p.slice(0, p.lastIndexOf('.')) : '') {
    const found = positions.get(`${p}#value`) ?? positions.get(p);
    if (found) return found;
  }
  return undefined;
}

function normalizeService(name: string, raw: Json, ctx: Ctx): ServicePlan {
  const at = `services.${name}`;
  const err = (sub: string, problem: string) => fieldError(sub ? `${at}.${sub}` : at, problem, ctx.positions, ctx.file);
  const svc: JsonMap = raw === null ? {} : isMapping(raw) ? raw : (() => { throw err('', 'must be a mapping'); })();
  const pos = ctx.positions.get(at) ?? { file: ctx.file, line: 1, col: 1 };

  const image = svc['image'];
  if (image !== undefined && image !== null && typeof image !== 'string') throw err('image', 'must be a string');
  const hasBuild = svc['build'] !== undefined && svc['build'] !== null;
  if (!image && !hasBuild && svc['extends'] === undefined) throw err('', 'has neither an image nor a build section');

  const command = argvField(svc['command'], () => err('command', 'must be a string or a list of strings'));
  const entrypoint = argvField(svc['entrypoint'], () => err('entrypoint', 'must be a string or a list of strings'));

  // env_file first, environment over it, as compose does.
  const environment: Record<string, EnvVar> = Object.create(null) as Record<string, EnvVar>;
  const envFiles: string[] = [];
  for (const [i, entry] of asList(svc['env_file']).entries()) {
    let p: string;
    let required = true;
    if (typeof entry === 'string') p = entry;
    else if (isMapping(entry) && typeof entry['path'] === 'string') {
      p = entry['path'];
      required = entry['required'] !== false && entry['required'] !== 'false';
    } else throw err(`env_file.${i}`, 'must be a path or a mapping with a path');
    const abs = resolveHostPath(p, ctx.projectDirectory);
    let text: string;
    try {
      text = ctx.readFile(abs);
    } catch (e) {
      if (!required) continue;
      throw err(`env_file.${i}`, `env file ${p} ${readFailure(e)}`);
    }
    envFiles.push(abs);
    for (const [k, v] of Object.entries(parseDotEnv(text))) environment[k] = { value: v, sensitive: true };
  }
  const envField = svc['environment'];
  if (envField !== undefined && envField !== null && !Array.isArray(envField) && !isMapping(envField)) throw err('environment', 'must be a list or a mapping');
  for (const [k, v] of Object.entries(listToMap(envField))) {
    if (v !== null && typeof v === 'object') throw err(`environment.${k}`, 'must be a string, number or boolean');
    const value = v === null ? (ctx.env[k] ?? null) : String(v);
    // Secret by its name, or a URL with credentials in it (redis://:password@host, postgres://user:password@db).
    environment[k] = { value, sensitive: isSecretKey(k) || (value !== null && URL_CREDENTIALS.test(value)) };
  }

  const ports = asList(svc['ports']).map((p, i) => parsePort(p, () => err(`ports.${i}`, `${shown(p)} is not a port mapping`)));
  const healthcheck = parseHealthcheck(svc['healthcheck'], err);

  const deploy = isMapping(svc['deploy']) ? svc['deploy'] : {};
  const resources = isMapping(deploy['resources']) ? deploy['resources'] : {};
  const limitsRaw = isMapping(resources['limits']) ? resources['limits'] : {};
  const reservRaw = isMapping(resources['reservations']) ? resources['reservations'] : {};
  const cpus = (v: Json | undefined, sub: string) => {
    if (v === undefined || v === null) return undefined;
    const n = parseCpus(v);
    if (n === undefined) throw err(sub, `${shown(v)} is not a number of CPUs`);
    return n;
  };
  const size = (v: Json | undefined, sub: string) => {
    if (v === undefined || v === null) return undefined;
    const n = parseSize(v);
    if (n === undefined) throw err(sub, `${shown(v)} is not a size`);
    return n;
  };
  // 0 means no limit, as in compose and docker.
  const positive = (n: number | undefined) => (n === 0 ? undefined : n);
  const limits = {
    cpus: positive(cpus(limitsRaw['cpus'], 'deploy.resources.limits.cpus')) ?? positive(cpus(svc['cpus'], 'cpus')),
    memoryBytes: positive(size(limitsRaw['memory'], 'deploy.resources.limits.memory')) ?? positive(size(svc['mem_limit'], 'mem_limit')),
  };
  const reservations = {
    cpus: cpus(reservRaw['cpus'], 'deploy.resources.reservations.cpus'),
    memoryBytes: size(reservRaw['memory'], 'deploy.resources.reservations.memory') ?? size(svc['mem_reservation'], 'mem_reservation'),
  };

  let stopGracePeriodMs: number | undefined;
  if (svc['stop_grace_period'] !== undefined && svc['stop_grace_period'] !== null) {
    stopGracePeriodMs = parseDuration(svc['stop_grace_period']);
    if (stopGracePeriodMs === undefined) throw err('stop_grace_period', `${shown(svc['stop_grace_period'])} is not a duration`);
  }

  const updateConfig = parseUpdateConfig(deploy['update_config'], (sub, problem) => err(`deploy.update_config${sub ? `.${sub}` : ''}`, problem));

  const bindMounts: BindMount[] = [];
  for (const [i, v] of asList(svc['volumes']).entries()) {
    const m = parseBindMount(v, ctx.projectDirectory, () => err(`volumes.${i}`, `${shown(v)} is not a volume`));
    if (m) bindMounts.push(m);
  }

  // The analysis reads network aliases (names nginx may route to): a list of names, as compose requires.
  const networks = svc['networks'];
  if (isMapping(networks)) {
    for (const [net, conf] of Object.entries(networks)) {
      const aliases = isMapping(conf) ? conf['aliases'] : undefined;
      if (aliases !== undefined && aliases !== null && !(Array.isArray(aliases) && aliases.every((a) => typeof a === 'string'))) throw err(`networks.${net}.aliases`, 'must be a list of names');
    }
  }

  const dependsRaw = svc['depends_on'];
  const dependsOn = Array.isArray(dependsRaw) ? dependsRaw.map(String) : isMapping(dependsRaw) ? Object.keys(dependsRaw) : [];
  const replicasRaw = deploy['replicas'] ?? svc['scale'];
  const replicas = replicasRaw === undefined || replicasRaw === null ? 1 : Number(replicasRaw);
  if (!Number.isInteger(replicas) || replicas < 0) throw err('deploy.replicas', `${shown(replicasRaw)} is not a whole number`);
  const restart = typeof svc['restart'] === 'string' ? svc['restart'] : undefined;

  return {
    name,
    image: typeof image === 'string' ? image : undefined,
    hasBuild,
    command,
    entrypoint,
    environment,
    envFiles,
    ports,
    healthcheck,
    limits,
    reservations,
    stopGracePeriodMs,
    restart,
    updateConfig,
    bindMounts,
    dependsOn,
    replicas,
    raw: Object.assign(Object.create(null) as Record<string, string>, Object.fromEntries(Object.entries(svc).map(([k, v]) => [k, canonicalJson(v)]))),
    pos,
  };
}

/** JSON with keys sorted, so two equal mappings compare equal however they were written. */
function canonicalJson(v: Json): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (isMapping(v)) return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(v[k] as Json)}`).join(',')}}`;
  return JSON.stringify(v);
}

function argvField(v: Json | undefined, fail: () => Error): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return shellSplit(v);
  if (Array.isArray(v) && v.every((x) => typeof x === 'string' || typeof x === 'number')) return v.map(String);
  throw fail();
}

function parsePort(p: Json, fail: () => Error): PortMapping {
  if (typeof p === 'number') return { hostIp: undefined, published: undefined, target: p, protocol: 'tcp' };
  if (isMapping(p)) {
    const target = Number(p['target']);
    if (!Number.isInteger(target) || target <= 0) throw fail();
    return {
      hostIp: typeof p['host_ip'] === 'string' ? p['host_ip'] : undefined,
      published: p['published'] === undefined || p['published'] === null ? undefined : String(p['published']),
      target,
      protocol: typeof p['protocol'] === 'string' ? p['protocol'] : 'tcp',
    };
  }
  if (typeof p !== 'string') throw fail();
  const [spec, protocol = 'tcp'] = p.split('/');
  const parts = (spec as string).split(':');
  let hostIp: string | undefined;
  let published: string | undefined;
  let target: string;
  if (parts.length === 1) target = parts[0] as string;
  else if (parts.length === 2) [published, target] = parts as [string, string];
  else {
    target = parts.pop() as string;
    published = parts.pop() as string;
    hostIp = parts.join(':').replace(/^\[|\]$/g, '');
  }
  const t = Number(target.split('-')[0]);
  if (!Number.isInteger(t) || t <= 0 || t > 65535) throw fail();
  if (published !== undefined && published !== '' && !/^\d+(-\d+)?$/.test(published)) throw fail();
  return { hostIp, published: published === '' ? undefined : published, target: t, protocol };
}

function parseHealthcheck(v: Json | undefined, err: (sub: string, problem: string) => Error): Healthcheck | null | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isMapping(v)) throw err('healthcheck', 'must be a mapping');
  if (v['disable'] === true) return null;
  const rawTest = v['test'];
  let test: string[];
  if (typeof rawTest === 'string') test = ['CMD-SHELL', rawTest];
  else if (Array.isArray(rawTest) && rawTest.every((x) => typeof x === 'string')) test = rawTest as string[];
  else if (rawTest === undefined || rawTest === null) test = [];
  else throw err('healthcheck.test', 'must be a string or a list of strings');
  if (test[0] === 'NONE') return null;
  const dur = (key: string, dflt: number) => {
    const x = v[key];
    if (x === undefined || x === null) return dflt;
    const ms = parseDuration(x);
    if (ms === undefined) throw err(`healthcheck.${key}`, `${shown(x)} is not a duration`);
    return ms;
  };
  const retriesRaw = v['retries'];
  const retries = retriesRaw === undefined || retriesRaw === null ? 3 : Number(retriesRaw);
  if (!Number.isInteger(retries) || retries < 0) throw err('healthcheck.retries', `${shown(retriesRaw)} is not a whole number`);
  return { test, intervalMs: dur('interval', 30_000), timeoutMs: dur('timeout', 30_000), retries, startPeriodMs: dur('start_period', 0) };
}

/** Swarm's defaults, except failure_action: this tool exists to roll back, so that is its default. */
export const DEFAULT_UPDATE_CONFIG: UpdateConfig = {
  parallelism: 1,
  delayMs: 0,
  failureAction: 'rollback',
  monitorMs: 5000,
  order: 'stop-first',
  maxFailureRatio: 0,
  explicit: [],
};

function parseUpdateConfig(v: Json | undefined, err: (sub: string, problem: string) => Error): UpdateConfig {
  if (v === undefined || v === null) return DEFAULT_UPDATE_CONFIG;
  if (!isMapping(v)) throw err('', 'must be a mapping');
  const explicit = Object.keys(v);
  const num = (key: string, dflt: number, integer: boolean) => {
    const x = v[key];
    if (x === undefined || x === null) return dflt;
    const n = Number(x);
    if (!Number.isFinite(n) || n < 0 || (integer && !Number.isInteger(n))) throw err(key, `${shown(x)} is not a ${integer ? 'whole ' : ''}number`);
    return n;
  };
  const dur = (key: string, dflt: number) => {
    const x = v[key];
    if (x === undefined || x === null) return dflt;
    const ms = parseDuration(x);
    if (ms === undefined) throw err(key, `${shown(x)} is not a duration`);
    return ms;
  };
  const failureAction = v['failure_action'] ?? 'rollback';
  if (failureAction !== 'rollback' && failureAction !== 'pause' && failureAction !== 'continue') throw err('failure_action', `${shown(failureAction)} is not one of rollback, pause, continue`);
  const order = v['order'] ?? 'stop-first';
  if (order !== 'stop-first' && order !== 'start-first') throw err('order', `${shown(order)} is not one of stop-first, start-first`);
  return {
    parallelism: num('parallelism', 1, true),
    delayMs: dur('delay', 0),
    failureAction,
    monitorMs: dur('monitor', 5000),
    order,
    maxFailureRatio: num('max_failure_ratio', 0, false),
    explicit,
  };
}

function resolveHostPath(p: string, projectDirectory: string): string {
  if (p === '~' || p.startsWith('~/')) return path.join(os.homedir(), p.slice(1));
  return path.resolve(projectDirectory, p);
}

function parseBindMount(v: Json, projectDirectory: string, fail: () => Error): BindMount | undefined {
  if (isMapping(v)) {
    if (v['type'] !== 'bind') return undefined;
    if (typeof v['source'] !== 'string' || typeof v['target'] !== 'string') throw fail();
    return { source: resolveHostPath(v['source'], projectDirectory), target: v['target'], readOnly: v['read_only'] === true };
  }
  if (typeof v !== 'string') throw fail();
  const parts = v.split(':');
  if (parts.length < 2) return undefined; // anonymous volume
  const [source, target, mode = ''] = parts as [string, string, string?];
  if (!(source.startsWith('.') || source.startsWith('/') || source.startsWith('~'))) return undefined; // named volume
  return { source: resolveHostPath(source, projectDirectory), target, readOnly: mode.split(',').includes('ro') };
}

function readExtension(v: Json | undefined, positions: Positions, file: string): ArenaExtension {
  if (v === undefined || v === null) return { services: undefined, stateful: undefined, host: undefined, memoryModel: undefined };
  if (!isMapping(v)) throw fieldError('x-arena-deploy', 'must be a mapping', positions, file);
  const known = (at: string, m: JsonMap, keys: Set<string>) => {
    const unknown = Object.keys(m).filter((k) => !keys.has(k));
    if (unknown.length > 0) throw new PlanError(printable(`${at}: unknown keys: ${unknown.map((k) => (/^[\w.-]+$/.test(k) ? k : JSON.stringify(k))).join(', ')}`), positions.get(`${at}.${unknown[0]}`) ?? posNear(`${at}.${unknown[0]}`, positions) ?? { file });
  };
  known('x-arena-deploy', v, ARENA_KEYS);
  const services = v['services'];
  if (services !== undefined && (typeof services !== 'string' || /[\u0000-\u001f\u007f]/.test(services))) throw fieldError('x-arena-deploy.services', 'must be a glob string such as "web-*"', positions, file);
  const stateful = v['stateful'];
  if (stateful !== undefined && !(Array.isArray(stateful) && stateful.every((s) => typeof s === 'string'))) throw fieldError('x-arena-deploy.stateful', 'must be a list of service names', positions, file);
  const size = (at: string, x: Json | undefined) => {
    if (x === undefined || x === null) return undefined;
    const n = parseSize(x);
    if (n === undefined) throw fieldError(at, `${shown(x)} is not a size`, positions, file);
    return n;
  };
  let host: ArenaExtension['host'];
  const h = v['host'];
  if (h !== undefined && h !== null) {
    if (!isMapping(h)) throw fieldError('x-arena-deploy.host', 'must be a mapping with cpus and memory', positions, file);
    known('x-arena-deploy.host', h, HOST_KEYS);
    const cpus = h['cpus'] === undefined || h['cpus'] === null ? undefined : parseCpus(h['cpus']);
    if (h['cpus'] !== undefined && h['cpus'] !== null && !cpus) throw fieldError('x-arena-deploy.host.cpus', `${shown(h['cpus'])} is not a number of CPUs`, positions, file);
    host = { cpus, memoryBytes: size('x-arena-deploy.host.memory', h['memory']), reserveMemoryBytes: size('x-arena-deploy.host.reserve-memory', h['reserve-memory']) };
  }
  let memoryModel: ArenaExtension['memoryModel'];
  const mm = v['memory-model'];
  if (mm !== undefined && mm !== null) {
    if (!isMapping(mm)) throw fieldError('x-arena-deploy.memory-model', 'must be a mapping with base, per-worker and overhead', positions, file);
    known('x-arena-deploy.memory-model', mm, MODEL_KEYS);
    memoryModel = { baseBytes: size('x-arena-deploy.memory-model.base', mm['base']), perWorkerBytes: size('x-arena-deploy.memory-model.per-worker', mm['per-worker']), overheadBytes: size('x-arena-deploy.memory-model.overhead', mm['overhead']) };
  }
  return { services: services as string | undefined, stateful: stateful as string[] | undefined, host, memoryModel };
}
