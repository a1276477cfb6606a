/** EngineClient backed by dockerode: the only file that imports it. */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import Docker from 'dockerode';
import { ArenaError, EngineUnreachableError } from '../errors.js';
import { SSH_FAILED, SshDialAgent, type SshDialError } from './ssh-dial-agent.js';
import { describeTarget, isRemoteTarget, parseSshHost, resolveEngineTarget, type EngineTarget } from './target.js';
import { Labels } from './labels.js';
import type { ContainerDetails, ContainerSummary, EngineClient, EngineEvent, EngineInfo, ExecResult, HealthState, ResourceUsage } from './engine-client.js';

const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ENOENT', 'EACCES', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/** Describes where the engine is, as resolved from --context, DOCKER_HOST, DOCKER_CONTEXT, the docker config or the default socket. */
export function engineEndpoint(env: NodeJS.ProcessEnv = process.env): string {
  return describeTarget(resolveEngineTarget({ env }));
}

/** How the client is built: the resolved target (resolved lazily, so commands that never reach the engine never fail on it). */
export interface DockerEngineClientOptions {
  /** Environment of the ssh children (HOME, SSH_AUTH_SOCK…); default: this process's. */
  readonly sshEnv?: () => Readonly<Record<string, string | undefined>> | undefined;
  readonly debug?: (line: string) => void;
}

/** The real engine, reached at the one resolved target (unix socket, tcp with or without TLS, ssh through the system ssh). */
export class DockerEngineClient implements EngineClient {
  private readonly resolve: () => EngineTarget;
  private resolved: EngineTarget | undefined;
  private docker: Docker | undefined;
  private agent: SshDialAgent | undefined;

  constructor(target: (() => EngineTarget) | NodeJS.ProcessEnv = process.env, private readonly options: DockerEngineClientOptions = {}) {
    this.resolve = typeof target === 'function' ? target : () => resolveEngineTarget({ env: target });
  }

  private target(): EngineTarget {
    return (this.resolved ??= this.resolve());
  }

  /** The target as messages name it; the raw DOCKER_HOST when it cannot be resolved. */
  private get endpoint(): string {
    try {
      return describeTarget(this.target());
    } catch {
      return 'the configured engine';
    }
  }

  private client(): Docker {
    if (this.docker) return this.docker;
    const target = this.target();
    const host = target.host;
    let opts: Docker.DockerOptions;
    if (host.startsWith('unix://')) opts = { socketPath: host.slice('unix://'.length) };
    else if (host.startsWith('tcp://')) {
      const url = new URL(host.replace(/^tcp:/, 'http:'));
      const tls = target.tls ? tlsMaterial(target.tls.certPath) : undefined;
      opts = tls
        ? { host: url.hostname, port: url.port || '2376', protocol: 'https', ...tls, ...(target.tls?.verify ? {} : { checkServerIdentity: () => undefined }) }
        : { host: url.hostname, port: url.port || '2375', protocol: 'http' };
      if (target.tls && !target.tls.verify) {
        // TLS without verification (SkipTLSVerify / DOCKER_TLS): an agent that accepts any certificate, as the docker CLI does.
        opts = { ...opts, agent: new https.Agent({ rejectUnauthorized: false, ...tls }) } as Docker.DockerOptions;
      }
    } else {
      // ssh://: HTTP over `ssh … docker system dial-stdio`; the host and port in the URL dockerode builds are never dialled.
      this.agent = new SshDialAgent(parseSshHost(host), this.options.sshEnv, this.options.debug);
      opts = { protocol: 'http', host: 'docker', port: '80', agent: this.agent } as Docker.DockerOptions;
    }
    this.docker = new Docker(opts);
    return this.docker;
  }

  /** The ssh connections open now (0 for other transports): each ssh child lives only as long as its request. */
  get openSshConnections(): number {
    return this.agent?.openConnections ?? 0;
  }

  /** Ends every open connection (the ssh children with them). */
  close(): void {
    this.agent?.destroy();
  }

  private unreachable(err: unknown): Error {
    if (err instanceof ArenaError) return err;
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    const statusCode = (err as { statusCode?: number } | undefined)?.statusCode;
    if (code === SSH_FAILED) {
      const a = parseSshHost(this.target().host);
      const manual = ['ssh', ...(a.port ? ['-p', a.port] : []), ...(a.user ? ['-l', a.user] : []), a.host, 'docker', 'version'].join(' ');
      return new EngineUnreachableError(
        `Cannot reach the Docker engine at ${this.endpoint} over ssh (${(err as SshDialError).sshReason}): check that \`${manual}\` works without a prompt (arena-deploy runs ssh with BatchMode=yes, so it needs key authentication and a known host key).`,
        { cause: err },
      );
    }
    if ((code && CONNECTION_CODES.has(code)) || (err as Error | undefined)?.message?.includes('socket hang up')) {
      return new EngineUnreachableError(
        `Cannot reach the Docker engine at ${this.endpoint} (${code ?? 'no answer'}): start it (for example \`sudo dockerd\`, or scripts/start-engine.sh) or point DOCKER_HOST at a running one.`,
        { cause: err },
      );
    }
    // Node's HTTP parser on something that is not HTTP: over ssh, typically a login banner or a profile printing to stdout.
    if (code?.startsWith('HPE_')) {
      const over = this.endpoint.startsWith('ssh://') ? ': over ssh, the remote login printed something before `docker system dial-stdio` (a banner or a profile script?)' : '';
      return new EngineUnreachableError(`The Docker engine at ${this.endpoint} answered with something that is not HTTP (${(err as Error).message})${over}.`, { cause: err });
    }
    if (statusCode === undefined && err instanceof Error && /timeout/i.test(err.message)) {
      return new EngineUnreachableError(`The Docker engine at ${this.endpoint} did not answer in time: check that it is running and reachable.`, { cause: err });
    }
    return err instanceof Error ? err : new Error(String(err));
  }

  private async call<T>(fn: (d: Docker) => Promise<T>): Promise<T> {
    try {
      return await fn(this.client());
    } catch (err) {
      throw this.unreachable(err);
    }
  }

  async ping(): Promise<EngineInfo> {
    return this.call(async (d) => {
      try {
        await withTimeout(d.ping(), 5000, 'ping');
      } catch (err) {
        const status = (err as { statusCode?: number }).statusCode;
        if (status !== undefined) throw new EngineUnreachableError(`${this.endpoint} answers HTTP ${status} to a Docker ping: it is not a Docker engine (check DOCKER_HOST).`, { cause: err });
        throw err;
      }
      const info = (await withTimeout(d.info(), 10_000, 'info')) as { ServerVersion?: string; NCPU?: number; MemTotal?: number };
      return { endpoint: this.endpoint, remote: isRemoteTarget(this.target()), serverVersion: info.ServerVersion ?? 'unknown', ncpu: info.NCPU ?? 0, memTotalBytes: info.MemTotal ?? 0 };
    });
  }

  async listProject(project: string): Promise<ContainerSummary[]> {
    return this.call(async (d) => {
      const list = await d.listContainers({ all: true, filters: { label: [`${Labels.project}=${project}`] } });
      return list
        .filter((c) => c.Labels[Labels.oneoff] !== 'True')
        .map((c) => {
          const labels = c.Labels;
          const status = c.Status ?? '';
          const health: HealthState = /\(healthy\)/.test(status) ? 'healthy' : /\(unhealthy\)/.test(status) ? 'unhealthy' : /health: starting/.test(status) ? 'starting' : 'none';
          return {
            id: c.Id,
            name: (c.Names[0] ?? c.Id).replace(/^\//, ''),
            project: labels[Labels.project] ?? project,
            service: labels[Labels.service] ?? '',
            number: Number(labels[Labels.number] ?? '1'),
            state: c.State,
            health,
            image: c.Image,
            configHash: labels[Labels.configHash],
            configFiles: splitFiles(labels[Labels.configFiles]),
            workingDir: labels[Labels.workingDir],
          };
        });
    });
  }

  async inspect(id: string): Promise<ContainerDetails> {
    return this.call(async (d) => {
      const c = await d.getContainer(id).inspect();
      const labels = c.Config.Labels ?? {};
      const state = c.State as Docker.ContainerInspectInfo['State'] & { Health?: { Status: string; Log?: Array<{ ExitCode: number; Output: string; Start: string }> } };
      const healthStatus = state.Health?.Status;
      const health: HealthState = healthStatus === 'healthy' || healthStatus === 'unhealthy' || healthStatus === 'starting' ? healthStatus : 'none';
      const hc = c.Config.Healthcheck as { Test?: string[]; Timeout?: number } | undefined;
      const ports = (c.NetworkSettings?.Ports ?? {}) as Record<string, Array<{ HostIp: string; HostPort: string }> | null>;
      return {
        id: c.Id,
        name: c.Name.replace(/^\//, ''),
        project: labels[Labels.project] ?? '',
        service: labels[Labels.service] ?? '',
        number: Number(labels[Labels.number] ?? '1'),
        state: state.Status,
        health,
        image: c.Config.Image,
        configHash: labels[Labels.configHash],
        configFiles: splitFiles(labels[Labels.configFiles]),
        workingDir: labels[Labels.workingDir],
        running: state.Running,
        restarting: state.Restarting,
        restartCount: c.RestartCount,
        exitCode: state.ExitCode,
        oomKilled: state.OOMKilled,
        startedAt: state.StartedAt,
        error: state.Error,
        healthLog: (state.Health?.Log ?? []).map((p) => ({ exitCode: p.ExitCode, output: p.Output, start: p.Start })),
        hasHealthcheck: Boolean(hc?.Test && hc.Test.length > 0 && hc.Test[0] !== 'NONE'),
        memoryLimitBytes: c.HostConfig.Memory ?? 0,
        nanoCpus: c.HostConfig.NanoCpus ?? 0,
        cmd: c.Config.Cmd ?? [],
        publishedPorts: Object.entries(ports).flatMap(([key, binds]) => {
          const [port, protocol] = key.split('/');
          return (binds ?? []).map((b) => ({ containerPort: Number(port), protocol: protocol ?? 'tcp', hostIp: b.HostIp ?? '', hostPort: Number(b.HostPort) }));
        }),
        healthTest: hc?.Test ?? [],
        healthTimeoutMs: hc?.Timeout ? Math.round(hc.Timeout / 1e6) : 30_000,
      };
    });
  }

  async inspectRaw(ids: readonly string[]): Promise<unknown[]> {
    return this.call(async (d) => Promise.all(ids.map((id) => d.getContainer(id).inspect())));
  }

  async imageExists(ref: string): Promise<boolean> {
    return this.call(async (d) => {
      try {
        await d.getImage(ref).inspect();
        return true;
      } catch (err) {
        if ((err as { statusCode?: number }).statusCode === 404) return false;
        throw err;
      }
    });
  }

  async logsTail(id: string, lines: number): Promise<string> {
    return this.call(async (d) => {
      const buf = (await d.getContainer(id).logs({ stdout: true, stderr: true, tail: lines, follow: false })) as unknown as Buffer;
      return demux(buf);
    });
  }

  async *events(project: string, signal: AbortSignal, sinceMs?: number): AsyncIterable<EngineEvent> {
    const filters = JSON.stringify({ type: ['container'], label: [`${Labels.project}=${project}`] });
    const stream = (await this.call((d) =>
      d.getEvents({ filters, ...(sinceMs ? { since: (sinceMs / 1000).toFixed(3) } : {}) } as unknown as { filters: string }),
    )) as NodeJS.ReadableStream & { destroy?: () => void };
    const onAbort = () => stream.destroy?.();
    signal.addEventListener('abort', onAbort, { once: true });
    let pending = '';
    try {
      for await (const chunk of stream) {
        pending += chunk.toString();
        let nl = pending.indexOf('\n');
        while (nl >= 0) {
          const line = pending.slice(0, nl).trim();
          pending = pending.slice(nl + 1);
          nl = pending.indexOf('\n');
          if (!line) continue;
          try {
            const e = JSON.parse(line) as { Action?: string; status?: string; id?: string; Actor?: { ID?: string; Attributes?: Record<string, string> }; timeNano?: number; time?: number };
            const attrs = e.Actor?.Attributes ?? {};
            yield {
              action: e.Action ?? e.status ?? '',
              containerId: e.Actor?.ID ?? e.id ?? '',
              service: attrs[Labels.service],
              exitCode: attrs['exitCode'] === undefined ? undefined : Number(attrs['exitCode']),
              timeMs: e.timeNano ? Math.round(e.timeNano / 1e6) : (e.time ?? 0) * 1000,
            };
          } catch {
            // A partial or foreign line: skip it, polling covers what it might have said.
          }
        }
      }
    } catch (err) {
      if (!signal.aborted) throw this.unreachable(err);
    } finally {
      signal.removeEventListener('abort', onAbort);
      stream.destroy?.();
    }
  }

  async memoryUsage(id: string): Promise<number | undefined> {
    return (await this.resourceUsage(id))?.memoryBytes;
  }

  async resourceUsage(id: string): Promise<ResourceUsage | undefined> {
    return this.call(async (d) => {
      const st = (await d.getContainer(id).stats({ stream: false })) as unknown as DockerStats;
      return resourceUsageOf(st);
    });
  }

  async stop(id: string, timeoutS: number): Promise<void> {
    await this.call(async (d) => {
      try {
        await d.getContainer(id).stop({ t: timeoutS });
      } catch (err) {
        // 304: already stopped; 404: already gone (a retry after the engine came back).
        const status = (err as { statusCode?: number }).statusCode;
        if (status !== 304 && status !== 404) throw err;
      }
    });
  }

  /**
   * Reads a file on the engine's host: a throwaway container of `image` (one the plan uses, never pulled) bind-mounts it
   * read-only and the file is copied out of it; the container is never started, carries the helper label, and is
   * always removed.
   */
  async readHostFile(image: string, hostPath: string): Promise<HostFile> {
    return this.call(async (d) => {
      let container: Docker.Container;
      try {
        container = await d.createContainer({
          name: `arena-deploy-filecheck-${randomBytes(5).toString('hex')}`,
          Image: image,
          Entrypoint: ['cat'],
          Cmd: ['/arena-deploy-file'],
          Labels: { [Labels.helper]: 'file-check' },
          NetworkDisabled: true,
          // A Mounts bind (unlike -v) never creates a missing source folder on the host: absent stays absent.
          HostConfig: { NetworkMode: 'none', Mounts: [{ Type: 'bind', Source: hostPath, Target: '/arena-deploy-file', ReadOnly: true }] },
        } as Docker.ContainerCreateOptions);
      } catch (err) {
        const status = (err as { statusCode?: number }).statusCode;
        const message = String((err as { json?: { message?: string } }).json?.message ?? (err as Error).message);
        // 20.10: "invalid mount config for type "bind": bind source path does not exist: /x"
        if (status === 400 && /does not exist/.test(message)) return { found: false, reason: 'it does not exist on the engine\'s host' };
        throw err;
      }
      try {
        // Copied out of the created (never started) container: the archive API mounts its binds, and is byte-exact
        // (container logs are not: the json-file driver stores them as UTF-8 strings).
        const stream = (await container.getArchive({ path: '/arena-deploy-file' })) as unknown as NodeJS.ReadableStream;
        const chunks: Buffer[] = [];
        for await (const c of stream) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c));
        const entry = firstTarEntry(Buffer.concat(chunks));
        if (!entry) return { found: false, reason: 'it cannot be read there (empty archive)' };
        if (entry.type !== 'file') return { found: false, reason: `it is a ${entry.type} there, not a file` };
        return { found: true, data: entry.data };
      } finally {
        await container.remove({ force: true }).catch(() => {});
      }
    });
  }

  async remove(id: string): Promise<void> {
    await this.call(async (d) => {
      try {
        await d.getContainer(id).remove({ force: true });
      } catch (err) {
        if ((err as { statusCode?: number }).statusCode !== 404) throw err;
      }
    });
  }

  async exec(id: string, argv: readonly string[]): Promise<ExecResult> {
    return this.call(async (d) => {
      const ex = await d.getContainer(id).exec({ Cmd: [...argv], AttachStdout: true, AttachStderr: true, Tty: false });
      const stream = await ex.start({ hijack: true, stdin: false });
      const chunks: Buffer[] = [];
      await new Promise<void>((resolve, reject) => {
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => resolve());
        stream.on('close', () => resolve());
        stream.on('error', reject);
      });
      const { stdout, stderr } = demuxStreams(Buffer.concat(chunks));
      // The exit code is set once the process has ended, which the end of its output stream implies; poll briefly in case the engine lags.
      for (let i = 0; ; i += 1) {
        const info = await ex.inspect();
        if (!info.Running || i >= 50) return { exitCode: info.ExitCode ?? -1, stdout, stderr };
        await new Promise((r) => setTimeout(r, 20));
      }
    });
  }
}

/** Splits Docker's multiplexed stream (8-byte frame headers) into stdout and stderr. */
function demuxStreams(buf: Buffer): { stdout: string; stderr: string } {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let i = 0;
  while (i + 8 <= buf.length) {
    const type = buf[i];
    const size = buf.readUInt32BE(i + 4);
    if (type !== 0 && type !== 1 && type !== 2) return { stdout: buf.toString('utf8'), stderr: '' };
    (type === 2 ? err : out).push(buf.subarray(i + 8, i + 8 + size));
    i += 8 + size;
  }
  return { stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
}

/** What a file-reading helper container found. */
export type HostFile = { readonly found: true; readonly data: Buffer } | { readonly found: false; readonly reason: string };

/** ca.pem, cert.pem and key.pem of a TLS folder, those that exist. */
function tlsMaterial(dir: string): { ca?: Buffer; cert?: Buffer; key?: Buffer } {
  const read = (f: string) => {
    try {
      return readFileSync(path.join(dir, f));
    } catch {
      return undefined;
    }
  };
  const out: { ca?: Buffer; cert?: Buffer; key?: Buffer } = {};
  const ca = read('ca.pem');
  const cert = read('cert.pem');
  const key = read('key.pem');
  if (ca) out.ca = ca;
  if (cert) out.cert = cert;
  if (key) out.key = key;
  return out;
}

function splitFiles(label: string | undefined): string[] {
  return label ? label.split(',').filter(Boolean) : [];
}

/** Docker multiplexes stdout/stderr with 8-byte frame headers when there is no TTY. */
function demux(buf: Buffer | string): string {
  if (typeof buf === 'string') return buf;
  const out: Buffer[] = [];
  let i = 0;
  while (i + 8 <= buf.length) {
    const type = buf[i];
    const size = buf.readUInt32BE(i + 4);
    if (type !== 0 && type !== 1 && type !== 2) return buf.toString('utf8');
    out.push(buf.subarray(i + 8, i + 8 + size));
    i += 8 + size;
  }
  return out.length ? Buffer.concat(out).toString('utf8') : buf.toString('utf8');
}

/** The first entry of a tar archive (after any pax headers): its kind and, for a file, its bytes. */
export function firstTarEntry(tar: Buffer): { type: 'file' | 'folder' | 'link' | 'special'; data: Buffer } | undefined {
  let i = 0;
  while (i + 512 <= tar.length) {
    const header = tar.subarray(i, i + 512);
    if (header.every((b) => b === 0)) return undefined;
    const size = parseInt(header.subarray(124, 136).toString('ascii').replace(/\0.*$/, '').trim() || '0', 8);
    const flag = String.fromCharCode(header[156] ?? 0);
    const data = tar.subarray(i + 512, i + 512 + size);
    i += 512 + Math.ceil(size / 512) * 512;
    // pax extended headers (x, g) and GNU long names (L, K) describe the next entry.
    if ('xgLK'.includes(flag)) continue;
    if (flag === '0' || flag === '\0' || flag === '7') return { type: 'file', data };
    return { type: flag === '5' ? 'folder' : flag === '1' || flag === '2' ? 'link' : 'special', data: Buffer.alloc(0) };
  }
  return undefined;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(Object.assign(new Error(`${what} timeout`), { code: 'ETIMEDOUT' })), ms);
    }),
  ]);
}

/** The fields of a stats sample that `docker stats` reads. */
interface DockerStats {
  memory_stats?: { usage?: number; stats?: Record<string, number> };
  cpu_stats?: { cpu_usage?: { total_usage?: number; percpu_usage?: number[] }; system_cpu_usage?: number; online_cpus?: number };
  precpu_stats?: { cpu_usage?: { total_usage?: number }; system_cpu_usage?: number };
}

/** Memory and CPU % the way the docker CLI computes them from one sample (its previous reading is in precpu_stats). */
export function resourceUsageOf(st: DockerStats): ResourceUsage | undefined {
  const m = st.memory_stats;
  if (!m?.usage) return undefined;
  // cgroup v2 calls it inactive_file, v1 total_inactive_file; docker stats subtracts it.
  const cache = m.stats?.['inactive_file'] ?? m.stats?.['total_inactive_file'] ?? 0;
  const cpu = st.cpu_stats;
  const pre = st.precpu_stats;
  const cpuDelta = (cpu?.cpu_usage?.total_usage ?? 0) - (pre?.cpu_usage?.total_usage ?? 0);
  const systemDelta = (cpu?.system_cpu_usage ?? 0) - (pre?.system_cpu_usage ?? 0);
  const cpus = cpu?.online_cpus || cpu?.cpu_usage?.percpu_usage?.length || 1;
  const cpuPercent = pre?.system_cpu_usage && systemDelta > 0 && cpuDelta >= 0 ? (cpuDelta / systemDelta) * cpus * 100 : undefined;
  return { memoryBytes: Math.max(0, m.usage - cache), cpuPercent };
}
