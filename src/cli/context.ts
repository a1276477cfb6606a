/** The composition root's product: every dependency a command needs, real in the CLI, fakes in tests. */
import type { EngineClient } from '../engine/engine-client.js';
import type { ComposeClient } from '../engine/compose-client.js';
import type { ProcessRunner } from '../engine/process-runner.js';
import type { Clock } from '../rollout/health-wait.js';
import type { RendererKind } from '../rollout/execute-rollout.js';

/** Streams and terminal facts. */
export interface IO {
  readonly stdout: NodeJS.WriteStream;
  readonly stderr: NodeJS.WriteStream;
  readonly stdoutIsTTY: boolean;
  readonly stderrIsTTY: boolean;
  /** Where answers to questions come from; only read when it is a terminal. */
  readonly stdin?: NodeJS.ReadableStream | undefined;
  readonly stdinIsTTY?: boolean | undefined;
}

/** What every command receives. */
export interface Context {
  readonly io: IO;
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
  readonly engine: EngineClient;
  readonly compose: ComposeClient;
  readonly runner: ProcessRunner;
  readonly clock: Clock;
  readonly debug: boolean;
  /** Values never to print; commands add the plans' sensitive values. */
  readonly secrets: Set<string>;
  /** Aborted on SIGINT/SIGTERM. */
  readonly signal: AbortSignal;
}

/** Rich task list when progress (stderr) is a terminal, timestamped lines in pipes and CI; decided once here. */
export function chooseRenderer(io: IO, env: NodeJS.ProcessEnv): RendererKind {
  if (env['CI'] === 'true' || env['CI'] === '1' || env['TERM'] === 'dumb') return 'simple';
  return io.stderrIsTTY ? 'default' : 'simple';
}
