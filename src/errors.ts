/** Exit codes of every command, documented in the README. */
export const ExitCode = {
  ok: 0,
  failed: 1,
  usage: 2,
  validation: 3,
  preflight: 4,
  rolledBack: 5,
  rollbackFailed: 6,
  interrupted: 130,
  hangup: 129,
  terminated: 143,
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/** Base of every error the tool raises on purpose: a one-sentence message and the exit code it maps to. */
export class ArenaError extends Error {
  readonly exitCode: ExitCodeValue;
  /** Extra lines printed below the sentence (what to do, details). */
  readonly hints: readonly string[];
  constructor(message: string, exitCode: ExitCodeValue, options: { cause?: unknown; hints?: readonly string[] } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.exitCode = exitCode;
    this.hints = options.hints ?? [];
  }
}

/** Bad flags or arguments (exit 2). */
export class UsageError extends ArenaError {
  constructor(message: string, options: { cause?: unknown; hints?: readonly string[] } = {}) {
    super(message, ExitCode.usage, options);
  }
}

/** A plan that cannot be read or parsed, with its position when known (exit 2). */
export class PlanError extends ArenaError {
  readonly file: string | undefined;
  readonly line: number | undefined;
  readonly col: number | undefined;
  constructor(message: string, where: { file?: string; line?: number; col?: number } = {}, options: { cause?: unknown } = {}) {
    const prefix = where.file ? `${where.file}${where.line ? `:${where.line}:${where.col ?? 1}` : ''}: ` : '';
    super(prefix + message, ExitCode.usage, options);
    this.file = where.file;
    this.line = where.line;
    this.col = where.col;
  }
}

/** The target plan was read but is not deployable (exit 3). */
export class ValidationError extends ArenaError {
  constructor(message: string, options: { cause?: unknown; hints?: readonly string[] } = {}) {
    super(message, ExitCode.validation, options);
  }
}

/** The fleet or engine is not in a state to start (exit 4): engine unreachable, unhealthy fleet, lock held. */
export class PreflightError extends ArenaError {
  constructor(message: string, options: { cause?: unknown; hints?: readonly string[] } = {}) {
    super(message, ExitCode.preflight, options);
  }
}

/** The Docker engine did not answer (exit 4). */
export class EngineUnreachableError extends PreflightError {}

/** Another rollout holds the project's lock (exit 4). */
export class LockError extends PreflightError {}

/** The rollout failed and everything it changed was put back (exit 5). */
export class RolledBackError extends ArenaError {
  constructor(message: string, options: { cause?: unknown; hints?: readonly string[] } = {}) {
    super(message, ExitCode.rolledBack, options);
  }
}

/** The rollout failed and so did putting things back: a person must look (exit 6). */
export class RollbackFailedError extends ArenaError {
  constructor(message: string, options: { cause?: unknown; hints?: readonly string[] } = {}) {
    super(message, ExitCode.rollbackFailed, options);
  }
}

/** The user interrupted the run: exit 130 after SIGINT, 143 after SIGTERM (the CLI picks by the signal received). */
export class CancelledError extends ArenaError {
  constructor(message = 'Interrupted.', options: { cause?: unknown; hints?: readonly string[] } = {}) {
    super(message, ExitCode.interrupted, options);
  }
}

/** A failed child process, keeping argv, exit code and stderr (secrets already redacted in argv). */
export class CommandFailedError extends Error {
  readonly argv: readonly string[];
  readonly exitCode: number | undefined;
  readonly stderr: string;
  constructor(argv: readonly string[], exitCode: number | undefined, stderr: string, options: { cause?: unknown } = {}) {
    const reason = exitCode === undefined ? 'could not be started' : `failed with exit code ${exitCode}`;
    super(`Command ${reason}: ${argv.join(' ')}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CommandFailedError';
    this.argv = argv;
    this.exitCode = exitCode;
    this.stderr = stderr;
  }

  /** The most telling line of the command's stderr, for one-sentence messages. */
  get firstStderrLine(): string {
    const lines = this.stderr.split('\n').map((l) => l.trim()).filter(Boolean);
    return lines.find((l) => /error|invalid|not found|no such|denied|cannot|failed/i.test(l)) ?? lines[0] ?? '';
  }
}

/** Wait for a container's health failed: it reported unhealthy, exited, ran out of memory, or ran out of time. */
export class HealthCheckError extends Error {
  readonly kind: 'unhealthy' | 'timeout' | 'exited' | 'oom' | 'restarted';
  readonly service: string;
  readonly elapsedMs: number;
  constructor(kind: HealthCheckError['kind'], service: string, elapsedMs: number, message: string) {
    super(message);
    this.name = 'HealthCheckError';
    this.kind = kind;
    this.service = service;
    this.elapsedMs = elapsedMs;
  }
}

/** The operator answered anything but yes to "Roll out? [y/N]" (exit 1): nothing was changed. */
export class DeclinedError extends ArenaError {
  constructor(message = 'Not confirmed: nothing was changed.') {
    super(message, ExitCode.failed);
  }
}
