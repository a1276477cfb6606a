/** Runs child processes with argument arrays: the only importer of execa. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
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

/** The real runner; echoes each command through `debug` with secrets redacted. */
export class ExecaProcessRunner implements ProcessRunner {
  constructor(
    private readonly debug: (line: string) => void = () => {},
    private readonly secrets: () => Iterable<string> = () => [],
  ) {}

  async run(file: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const shown = [file, ...redactArgv(args, this.secrets())];
    this.debug(`$ ${shown.join(' ')}`);
    // Output goes to files, not pipes, unless it is streamed: a compose whose reader died (this tool killed with
    // SIGKILL) would get SIGPIPE on its next progress line and stop halfway through a recreate; with files it finishes.
    const dir = options.onOutput ? undefined : mkdtempSync(path.join(os.tmpdir(), 'arena-deploy-run-'));
    try {
      const child: ResultPromise = execa(file, [...args], {
        reject: false,
        stdin: 'ignore',
        ...(dir ? { stdout: { file: path.join(dir, 'stdout') }, stderr: { file: path.join(dir, 'stderr') } } : {}),
        timeout: options.timeoutMs,
        cancelSignal: options.signal,
        cwd: options.cwd,
        env: options.env as NodeJS.ProcessEnv | undefined,
        stripFinalNewline: true,
        // Its own process group: a Ctrl-C on the terminal reaches this tool, which decides, not a compose halfway through a recreate.
        detached: true,
        // And it outlives a forced exit: a compose killed halfway through a recreate leaves a service with no running container.
        cleanup: false,
      });
      if (options.onOutput) {
        const forward = (chunk: Buffer | string) => options.onOutput?.(chunk.toString());
        child.stdout?.on('data', forward);
        child.stderr?.on('data', forward);
      }
      const result = await child;
      const read = (name: string, piped: unknown) => {
        if (!dir) return String(piped ?? '');
        try {
          return readFileSync(path.join(dir, name), 'utf8').replace(/\n$/, '');
        } catch {
          return '';
        }
      };
      return this.finish(shown, options, result, read('stdout', result.stdout), read('stderr', result.stderr));
    } finally {
      if (dir) rmSync(dir, { recursive: true, force: true });
    }
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
