/**
 * Where the Docker engine is: one target resolved with the docker CLI's precedence and handed to both dockerode and
 * every docker / docker compose child process, so the two can never talk to different engines.
 */
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EngineUnreachableError, UsageError } from '../errors.js';

/** The local engine's socket, used when nothing names another one. */
export const DEFAULT_DOCKER_HOST = 'unix:///var/run/docker.sock';

/** TLS settings of a tcp:// target. */
export interface EngineTls {
  /** Verify the engine's certificate against ca.pem (DOCKER_TLS_VERIFY); false: TLS without verification. */
  readonly verify: boolean;
  /** Folder holding ca.pem, cert.pem and key.pem (any of them may be missing). */
  readonly certPath: string;
}

/** The resolved engine: its address, where that came from, and TLS material for tcp://. */
export interface EngineTarget {
  /** unix:///path, tcp://host:port or ssh://[user@]host[:port]. */
  readonly host: string;
  /** What chose it. */
  readonly source: 'flag' | 'DOCKER_HOST' | 'DOCKER_CONTEXT' | 'config' | 'default';
  /** The docker context it came from, when one did. */
  readonly context: string | undefined;
  readonly tls: EngineTls | undefined;
}

/** Inputs of the resolution: the --context flag, the environment, the home folder (for ~/.docker). */
export interface ResolveTargetInput {
  readonly contextFlag?: string | undefined;
  readonly env: NodeJS.ProcessEnv;
  readonly homeDir?: string;
}

/** The docker CLI's config folder: $DOCKER_CONFIG, else ~/.docker. */
export function dockerConfigDir(env: NodeJS.ProcessEnv, homeDir: string = os.homedir()): string {
  const fromEnv = env['DOCKER_CONFIG'];
  return fromEnv && fromEnv !== '' ? fromEnv : path.join(homeDir, '.docker');
}

/** sha256 of a context name: the folder name the docker CLI stores it under. */
export function contextDirName(name: string): string {
  return createHash('sha256').update(name).digest('hex');
}

/**
 * Resolves the engine as the docker CLI does: `--context NAME` > DOCKER_HOST > DOCKER_CONTEXT > the currentContext of
 * $DOCKER_CONFIG/config.json > the local socket. The context "default" means DOCKER_HOST, else the local socket.
 * Throws UsageError for an unknown context or a malformed docker config (exit 2).
 */
export function resolveEngineTarget(input: ResolveTargetInput): EngineTarget {
  const env = input.env;
  const configDir = dockerConfigDir(env, input.homeDir);
  const flag = input.contextFlag;
  if (flag !== undefined) {
    if (flag === '') throw new UsageError('--context needs a context name (see `docker context ls`).');
    return fromContext(flag, 'flag', configDir, env);
  }
  const dockerHost = env['DOCKER_HOST'];
  if (dockerHost && dockerHost !== '') return fromHost(dockerHost, 'DOCKER_HOST', undefined, env, configDir);
  const envContext = env['DOCKER_CONTEXT'];
  if (envContext && envContext !== '') return fromContext(envContext, 'DOCKER_CONTEXT', configDir, env);
  const current = currentContext(configDir);
  if (current) return fromContext(current, 'config', configDir, env);
  return { host: DEFAULT_DOCKER_HOST, source: 'default', context: undefined, tls: undefined };
}

function fromHost(host: string, source: EngineTarget['source'], context: string | undefined, env: NodeJS.ProcessEnv, configDir: string): EngineTarget {
  checkHost(host, source === 'DOCKER_HOST' ? 'DOCKER_HOST' : `context "${context}"`);
  let tls: EngineTls | undefined;
  // DOCKER_TLS_VERIFY / DOCKER_CERT_PATH apply to a tcp:// DOCKER_HOST as in the docker CLI (certs default to ~/.docker).
  const verify = env['DOCKER_TLS_VERIFY'] !== undefined && env['DOCKER_TLS_VERIFY'] !== '';
  if (source === 'DOCKER_HOST' && host.startsWith('tcp://') && (verify || (env['DOCKER_TLS'] ?? '') !== '')) {
    tls = { verify, certPath: env['DOCKER_CERT_PATH'] && env['DOCKER_CERT_PATH'] !== '' ? env['DOCKER_CERT_PATH'] : configDir };
  }
  return { host, source, context, tls };
}

function fromContext(name: string, source: EngineTarget['source'], configDir: string, env: NodeJS.ProcessEnv): EngineTarget {
  if (name === 'default') {
    const dockerHost = env['DOCKER_HOST'];
    if (dockerHost && dockerHost !== '') return { ...fromHost(dockerHost, 'DOCKER_HOST', undefined, env, configDir), source, context: 'default' };
    return { host: DEFAULT_DOCKER_HOST, source, context: 'default', tls: undefined };
  }
  const id = contextDirName(name);
  const metaFile = path.join(configDir, 'contexts', 'meta', id, 'meta.json');
  const origin = source === 'flag' ? '--context' : source === 'DOCKER_CONTEXT' ? 'DOCKER_CONTEXT' : `the currentContext of ${path.join(configDir, 'config.json')}`;
  let text: string;
  try {
    text = readFileSync(metaFile, 'utf8');
  } catch {
    throw new UsageError(`The docker context "${name}" (from ${origin}) does not exist in ${configDir}: see \`docker context ls\`.`);
  }
  let meta: unknown;
  try {
    meta = JSON.parse(text);
  } catch {
    throw new UsageError(`The docker context "${name}" is malformed: ${metaFile} is not valid JSON.`);
  }
  const docker = (meta as { Endpoints?: { docker?: { Host?: unknown; SkipTLSVerify?: unknown } } } | null)?.Endpoints?.docker;
  if (!docker || typeof docker.Host !== 'string' || docker.Host === '') {
    throw new UsageError(`The docker context "${name}" is malformed: ${metaFile} has no Endpoints.docker.Host.`);
  }
  const host = docker.Host;
  checkHost(host, `context "${name}"`);
  const tlsDir = path.join(configDir, 'contexts', 'tls', id, 'docker');
  const hasTls = host.startsWith('tcp://') && isDir(tlsDir);
  return { host, source, context: name, tls: hasTls ? { verify: docker.SkipTLSVerify !== true, certPath: tlsDir } : undefined };
}

function currentContext(configDir: string): string | undefined {
  const file = path.join(configDir, 'config.json');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch {
    throw new UsageError(`The docker CLI config ${file} is not valid JSON: fix it, or set DOCKER_HOST or --context.`);
  }
  const current = (config as { currentContext?: unknown } | null)?.currentContext;
  if (current === undefined || current === '') return undefined;
  if (typeof current !== 'string') throw new UsageError(`The docker CLI config ${file} has a currentContext that is not a string.`);
  return current;
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** Rejects addresses neither dockerode nor the docker CLI can use (exit 4, as the engine is then not reachable). */
function checkHost(host: string, where: string): void {
  const bad = (why: string) =>
    new EngineUnreachableError(`${where === 'DOCKER_HOST' ? `DOCKER_HOST "${host}"` : `The engine address "${host}" of ${where}`} ${why}: use unix:///path, tcp://host:port or ssh://user@host[:port].`);
  if (host.startsWith('unix://')) {
    if (host.length === 'unix://'.length) throw bad('has no socket path');
    return;
  }
  if (!/^(tcp|ssh):\/\//.test(host)) throw bad('is not a valid address');
  let url: URL;
  try {
    url = new URL(host.replace(/^tcp:/, 'http:'));
  } catch {
    throw bad('is not a valid address');
  }
  if (!url.hostname) throw bad('has no host name');
}

/** The target as messages and reports name it: `ssh://deploy@10.0.0.5 (context prod)`. */
export function describeTarget(t: EngineTarget): string {
  return t.context && t.context !== 'default' ? `${t.host} (context ${t.context})` : t.host;
}

/** True when the engine may be on another host: anything but a unix socket. */
export function isRemoteTarget(t: EngineTarget): boolean {
  return !t.host.startsWith('unix://');
}

/**
 * The environment of docker / docker compose children: DOCKER_HOST set to the resolved target (plus the TLS
 * variables for tcp:// with TLS) and DOCKER_CONTEXT removed, so they reach the same engine as dockerode.
 */
export function childEnv(t: EngineTarget, env: NodeJS.ProcessEnv): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = { ...env, DOCKER_HOST: t.host };
  delete out['DOCKER_CONTEXT'];
  delete out['DOCKER_TLS_VERIFY'];
  delete out['DOCKER_TLS'];
  delete out['DOCKER_CERT_PATH'];
  if (t.tls) {
    if (t.tls.verify) out['DOCKER_TLS_VERIFY'] = '1';
    else out['DOCKER_TLS'] = '1';
    out['DOCKER_CERT_PATH'] = t.tls.certPath;
  }
  return out;
}

/** The parts of an ssh:// target the system ssh needs. */
export interface SshAddress {
  readonly host: string;
  readonly user: string | undefined;
  readonly port: string | undefined;
}

/** Splits ssh://[user@]host[:port] (the host may be an alias of ~/.ssh/config). */
export function parseSshHost(host: string): SshAddress {
  const url = new URL(host);
  const hostname = url.hostname.replace(/^\[(.*)\]$/, '$1');
  return { host: hostname, user: url.username ? decodeURIComponent(url.username) : undefined, port: url.port || undefined };
}

/** argv of the system ssh running `docker system dial-stdio` on the engine's host, like the docker CLI (with BatchMode). */
export function sshDialArgs(a: SshAddress): string[] {
  return ['-o', 'BatchMode=yes', '-o', 'ConnectTimeout=15', '-T', ...(a.port ? ['-p', a.port] : []), ...(a.user ? ['-l', a.user] : []), '--', a.host, 'docker', 'system', 'dial-stdio'];
}
