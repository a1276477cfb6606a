/** Runs child processes with argument arrays, never shell strings: the only module that starts processes. */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { CommandFailedError } from '../errors.js';
import { redactArgv } from '../util/redact.js';

/** What a finished command printed. */
export interface RunResult {
  readonly stdout: string;
  readonly stderr: string;
}

/** Options of one run. */
export interface RunOptions {
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
  readonly cwd?: string;
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Receives output as it comes (for long commands whose progress a user should see). */
  readonly onOutput?: (chunk: string) => void;
}

/** Runs a program; throws CommandFailedError when it fails. */
export interface ProcessRunner {
  run(file: string, args: readonly string[], options?: RunOptions): Promise<RunResult>;
}

/**
 * Starts a long-lived child whose stdin and stdout are a byte stream (the ssh that carries one engine connection); the
 * caller owns it and must end it. Its stderr is piped too, for the caller's error message.
 */
export function spawnPiped(file: string, args: readonly string[], options: { env?: Readonly<Record<string, string | undefined>>; debug?: (line: string) => void } = {}): ChildProcessWithoutNullStreams {
  options.debug?.(`$ ${[file, ...args].join(' ')}`);
  return spawn(file, [...args], { stdio: ['pipe', 'pipe', 'pipe'], env: options.env as NodeJS.ProcessEnv | undefined });
}

/** The real runner; echoes each command through `debug` with secrets redacted. */
export class ExecaProcessRunner implements ProcessRunner {
  constructor(
    private readonly debug: (line: string) => void = () => {},
    private readonly secrets: () => Iterable<string> = () => [],
    /** The environment of children that are given none (the resolved engine target's DOCKER_HOST); default: this process's. */
    private readonly baseEnv: () => Readonly<Record<string, string | undefined>> | undefined = () => undefined,
  ) {}

  async run(file: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const shown = [file, ...redactArgv(args, this.secrets())];
    this.debug(`$ ${shown.join(' ')}`);
    if (options.env === undefined) {
      const env = this.baseEnv();
      if (env) options = { ...options, env };
    }
    return options.onOutput ? this.streamed(shown, file, args, options) : this.toFiles(shown, file, args, options);
  }

  /**
   * Output to files whose descriptors the child holds itself, not to pipes this process reads: a compose whose parent
   * died (this tool SIGKILLed, its terminal gone) would get EPIPE on its next progress line and stop halfway through a
   * recreate; with files it finishes. (execa copies even `{file}` output through this process, hence node's spawn here.)
   */
  private async toFiles(shown: readonly string[], file: string, args: readonly string[], options: RunOptions): Promise<RunResult> {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'arena-deploy-run-'));
    const out = path.join(dir, 'stdout');
    const err = path.join(dir, 'stderr');
    const fds = [openSync(out, 'w', 0o600), openSync(err, 'w', 0o600)];
    try {
      let timedOut = false;
      let canceled = false;
      const ended = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>((resolve) => {
        const child = spawn(file, [...args], {
          stdio: ['ignore', fds[0] as number, fds[1] as number],
          cwd: options.cwd,
          env: options.env as NodeJS.ProcessEnv | undefined,
          // Its own process group: a Ctrl-C on the terminal reaches this tool, which decides, not a compose halfway through a recreate.
          detached: true,
        });
        const stop = () => child.kill('SIGTERM');
        const timer = options.timeoutMs ? setTimeout(() => ((timedOut = true), stop()), options.timeoutMs) : undefined;
        const onAbort = () => ((canceled = true), stop());
        options.signal?.addEventListener('abort', onAbort, { once: true });
        const done = (r: { code: number | null; signal: NodeJS.Signals | null; error?: Error }) => {
          clearTimeout(timer);
          options.signal?.removeEventListener('abort', onAbort);
          resolve(r);
        };
        child.once('error', (error) => done({ code: null, signal: null, error }));
        child.once('exit', (code, signal) => done({ code, signal }));
      });
      const read = (f: string) => {
        try {
          return readFileSync(f, 'utf8').replace(/\n$/, '');
        } catch {
          return '';
        }
      };
      const stdout = read(out);
      const stderr = read(err);
      if (ended.error || ended.code !== 0) {
        const reason = timedOut ? `timed out after ${options.timeoutMs} ms` : canceled ? 'was cancelled' : ended.signal ? `was killed by ${ended.signal}` : undefined;
        throw new CommandFailedError(shown, ended.error ? undefined : (ended.code ?? undefined), reason ? `${reason}\n${stderr}` : ended.error ? ended.error.message : stderr, { cause: ended.error });
      }
      return { stdout, stderr };
    } finally {
      for (const fd of fds) closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    }
  }

  /** Output streamed as it comes (the fixture build the demo shows): pipes, through execa. */
  private async streamed(shown: readonly string[], file: string, args: readonly string[], options: RunOptions): Promise<RunResult> {
    const child: ResultPromise = execa(file, [...args], {
      reject: false,
      stdin: 'ignore',
      timeout: options.timeoutMs,
      cancelSignal: options.signal,
      cwd: options.cwd,
      env: options.env as NodeJS.ProcessEnv | undefined,
      stripFinalNewline: true,
      detached: true,
      cleanup: false,
    });
    const forward = (chunk: Buffer | string) => options.onOutput?.(chunk.toString());
    child.stdout?.on('data', forward);
    child.stderr?.on('data', forward);
    const result = await child;
    return this.finish(shown, options, result, String(result.stdout ?? ''), String(result.stderr ?? ''));
  }

  private finish(shown: readonly string[], options: RunOptions, result: Awaited<ResultPromise>, stdout: string, stderr: string): RunResult {
    if (result.failed) {
      const exitCode = typeof result.exitCode === 'number' ? result.exitCode : undefined;
      const reason = result.timedOut ? `timed out after ${options.timeoutMs} ms` : result.isCanceled ? 'was cancelled' : undefined;
      const err = new CommandFailedError(shown, exitCode, reason ? `${reason}\n${stderr}` : stderr, { cause: result });
      throw err;
    }
    return { stdout, stderr };
  }
}
