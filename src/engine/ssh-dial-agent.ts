/**
 * An http.Agent that reaches a Docker engine the way the docker CLI does over ssh: each connection is the system
 * `ssh … -- host docker system dial-stdio`, HTTP spoken over its stdin/stdout, so ~/.ssh/config, keys, the agent and
 * known_hosts apply to this tool exactly as to the docker CLI and compose.
 */
import http from 'node:http';
import { Duplex } from 'node:stream';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { spawnPiped } from './process-runner.js';
import { sshDialArgs, type SshAddress } from './target.js';

/** Code of errors of the ssh transport; `sshReason` holds ssh's own words. */
export const SSH_FAILED = 'ESSHDIAL';

/** A failed ssh connection: ssh's stderr line and exit code. */
export interface SshDialError extends NodeJS.ErrnoException {
  readonly sshReason: string;
  readonly sshExitCode: number | null;
}

/** One connection: a Duplex over the ssh child's stdio; destroying it ends the child. */
class SshChildSocket extends Duplex {
  private stderr = '';
  private gotData = false;
  private exited = false;
  /** Idle timeout as net.Socket has it: the agent closes idle kept-alive connections with it. */
  timeout = 0;
  private idle: NodeJS.Timeout | undefined;

  constructor(private readonly child: ChildProcessWithoutNullStreams) {
    super({ allowHalfOpen: false });
    child.stdout.on('data', (chunk: Buffer) => {
      this.gotData = true;
      this.armIdle();
      if (!this.push(chunk)) child.stdout.pause();
    });
    // Without a byte from the engine, the end of the output is ssh failing: the exit handler says why (not "socket hang up").
    child.stdout.once('end', () => {
      if (this.gotData) this.push(null);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      if (this.stderr.length < 8192) this.stderr += chunk.toString();
    });
    // stdin closed under us (ssh died): the exit handler reports why.
    child.stdin.on('error', () => {});
    child.once('error', (err) => this.destroy(Object.assign(err, { sshReason: (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'ssh is not installed' : err.message, sshExitCode: null, code: SSH_FAILED })));
    child.once('exit', (code, signal) => {
      this.exited = true;
      if (this.destroyed) return;
      if (code !== 0 && !this.gotData) {
        const reason = sshReason(this.stderr) || (signal ? `ssh was killed by ${signal}` : `ssh exited with code ${code}`);
        const err = Object.assign(new Error(`ssh: ${reason}`), { code: SSH_FAILED, sshReason: reason, sshExitCode: code });
        this.destroy(err);
      } else {
        // The engine end closed: no more bytes will come.
        this.push(null);
      }
    });
  }

  override _read(): void {
    this.child.stdout.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.exited) return cb();
    this.armIdle();
    this.child.stdin.write(chunk, () => cb());
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.child.stdin.end();
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    // Each child lives exactly as long as its connection.
    clearTimeout(this.idle);
    this.child.stdin.destroy();
    if (!this.exited) this.child.kill('SIGTERM');
    cb(err);
  }

  private armIdle(): void {
    clearTimeout(this.idle);
    this.idle = undefined;
    if (this.timeout > 0) {
      this.idle = setTimeout(() => this.emit('timeout'), this.timeout);
      this.idle.unref();
    }
  }

  // What node's http client and agent call on a net.Socket.
  setTimeout(ms: number, cb?: () => void): this {
    this.timeout = ms;
    // As net.Socket: 0 disables the timeout and takes the callback off.
    if (cb) {
      if (ms === 0) this.removeListener('timeout', cb);
      else this.once('timeout', cb);
    }
    this.armIdle();
    return this;
  }
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  /** An idle kept-alive connection must not keep the tool running: its child and pipes are unref'd while free. */
  ref(): this {
    this.child.ref();
    for (const s of [this.child.stdin, this.child.stdout, this.child.stderr]) (s as unknown as { ref?: () => void }).ref?.();
    return this;
  }
  unref(): this {
    this.child.unref();
    for (const s of [this.child.stdin, this.child.stdout, this.child.stderr]) (s as unknown as { unref?: () => void }).unref?.();
    return this;
  }
}

/** The most telling line ssh printed: "Permission denied (publickey).", "Host key verification failed."… */
export function sshReason(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim().replace(/\r$/, '')).filter((l) => l && !/^Warning: Permanently added/.test(l));
  const telling = /denied|verification failed|refused|resolve|timed out|no route|unreachable|not found|closed|invalid|cannot|could not|error/i;
  return (lines.find((l) => telling.test(l)) ?? lines[0] ?? '').replace(/\.$/, '');
}

/**
 * The http.Agent dockerode is given for ssh:// targets: one ssh child per connection. Connections are kept alive
 * between requests (an ssh handshake per health poll would be slow) and closed after 10 s idle; an idle one never keeps
 * the process alive, and each child ends with its connection (or, at the latest, when this process exits: its stdin closes).
 */
export class SshDialAgent extends http.Agent {
  private readonly live = new Set<SshChildSocket>();

  constructor(
    private readonly address: SshAddress,
    private readonly env: () => Readonly<Record<string, string | undefined>> | undefined = () => undefined,
    private readonly debug?: (line: string) => void,
  ) {
    super({ keepAlive: true, timeout: 10_000 });
  }

  override createConnection(_options: unknown, cb?: (err: Error | null, socket: Duplex) => void): Duplex {
    const child = spawnPiped('ssh', sshDialArgs(this.address), { env: this.env(), ...(this.debug ? { debug: this.debug } : {}) });
    const socket = new SshChildSocket(child);
    this.live.add(socket);
    socket.once('close', () => this.live.delete(socket));
    cb?.(null, socket);
    return socket;
  }

  /** How many ssh children are running now (tests check none leak). */
  get openConnections(): number {
    return this.live.size;
  }

  override destroy(): void {
    for (const s of this.live) s.destroy();
    super.destroy();
  }
}
