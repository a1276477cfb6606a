/** The machine-readable side of a run: the final report object that ends the NDJSON events, built without I/O. */
import { ArenaError, CancelledError, DeclinedError, ExitCode, PreflightError, RolledBackError, RollbackFailedError } from '../errors.js';
import type { RolloutResult } from '../rollout/execute-rollout.js';
import { REPORT_VERSION } from './events.js';

/** How a run ended, as the report's `outcome` says. */
export type ReportOutcome =
  | RolloutResult['outcome']
  | 'nothing-to-do'
  | 'declined'
  | 'refused'
  | 'invalid'
  | 'failed'
  | 'restored'
  | 'restore-failed';

/** One service in the final report. */
export interface ServiceReport {
  readonly service: string;
  readonly change: string;
  readonly result: string;
  readonly config: string;
  readonly timeToHealthyMs: number | null;
}

/** The last line of `--output json`: what happened, in one object. Documented field by field in docs/report.md. */
export interface FinalReport {
  readonly version: typeof REPORT_VERSION;
  readonly type: 'report';
  readonly time: string;
  readonly rollout: string;
  readonly command: 'rollout' | 'rollback';
  readonly outcome: ReportOutcome;
  readonly verdict: string;
  readonly exitCode: number;
  readonly project: string | null;
  readonly engine: string | null;
  readonly plan: { readonly files: ReadonlyArray<{ readonly path: string; readonly sha256: string | null }> } | null;
  readonly services: readonly ServiceReport[];
  readonly backupDir: string | null;
  readonly failure: { readonly service: string | null; readonly message: string; readonly details: readonly string[] } | null;
  readonly rollbackErrors: readonly string[];
  readonly warnings: readonly string[];
  readonly durationMs: number;
}

/** What the report builders need besides the result. */
export interface ReportContext {
  readonly command: 'rollout' | 'rollback';
  readonly project?: string | undefined;
  readonly engine?: string | undefined;
  /** The plan files and the sha256 of each (null when unreadable). */
  readonly planFiles?: ReadonlyArray<{ readonly path: string; readonly sha256: string | null }> | undefined;
  readonly warnings?: readonly string[] | undefined;
}

/** The exit code an outcome of a finished rollout maps to (the CLI's mapping; 130 for interrupted unless told the signal's). */
export function exitCodeOfOutcome(outcome: RolloutResult['outcome'], interruptedCode: number = ExitCode.interrupted): number {
  switch (outcome) {
    case 'succeeded':
      return ExitCode.ok;
    case 'rolled-back':
      return ExitCode.rolledBack;
    case 'rollback-failed':
      return ExitCode.rollbackFailed;
    case 'interrupted':
      return interruptedCode;
    case 'engine-lost':
      return ExitCode.preflight;
  }
}

/** The exit code the CLI gives an error (see main.ts `report`): the typed errors' own, else 1. */
export function exitCodeOfError(err: unknown, interruptedCode: number = ExitCode.interrupted): number {
  if (err instanceof CancelledError) return interruptedCode;
  if (err instanceof ArenaError) return err.exitCode;
  return ExitCode.failed;
}

/** The outcome a report gives an error that ended the run before (or instead of) a rollout result. */
export function outcomeOfError(err: unknown): ReportOutcome {
  if (err instanceof CancelledError) return 'interrupted';
  if (err instanceof RollbackFailedError) return 'rollback-failed';
  if (err instanceof RolledBackError) return 'rolled-back';
  if (err instanceof DeclinedError) return 'declined';
  if (err instanceof PreflightError) return 'refused';
  if (err instanceof ArenaError && (err.exitCode === ExitCode.usage || err.exitCode === ExitCode.validation)) return 'invalid';
  return 'failed';
}

/** The final report of a rollout that ran (whatever its outcome). */
export function reportOfResult(rollout: string, result: RolloutResult, ctx: ReportContext, exitCode: number, time = new Date()): FinalReport {
  return {
    ...head(rollout, ctx, time),
    outcome: result.outcome,
    verdict: result.verdict,
    exitCode,
    services: result.services.map((s) => ({ service: s.service, change: s.change, result: s.result, config: s.config, timeToHealthyMs: s.timeToHealthyMs ?? null })),
    backupDir: result.backupDir ?? null,
    failure: result.failure ? { service: result.failure.service ?? null, message: result.failure.message, details: result.failure.details } : null,
    rollbackErrors: result.rollbackErrors,
    durationMs: result.durationMs,
  };
}

/** The final report of a run that ended without a rollout result: refused, invalid, declined, nothing to do, a rollback. */
export function reportOf(
  rollout: string,
  ctx: ReportContext,
  r: { outcome: ReportOutcome; verdict: string; exitCode: number; durationMs: number; services?: readonly ServiceReport[]; backupDir?: string | null; failure?: FinalReport['failure'] },
  time = new Date(),
): FinalReport {
  return {
    ...head(rollout, ctx, time),
    outcome: r.outcome,
    verdict: r.verdict,
    exitCode: r.exitCode,
    services: r.services ?? [],
    backupDir: r.backupDir ?? null,
    failure: r.failure ?? null,
    rollbackErrors: [],
    durationMs: r.durationMs,
  };
}

function head(rollout: string, ctx: ReportContext, time: Date) {
  return {
    version: REPORT_VERSION,
    type: 'report' as const,
    time: time.toISOString(),
    rollout,
    command: ctx.command,
    project: ctx.project ?? null,
    engine: ctx.engine ?? null,
    plan: ctx.planFiles?.length ? { files: ctx.planFiles } : null,
    warnings: ctx.warnings ?? [],
  };
}

/** Every string in a JSON value passed through `redact` (before encoding, so escaping cannot hide a secret). */
export function redactDeep<T>(value: T, redact: (s: string) => string): T {
  if (typeof value === 'string') return redact(value) as T;
  if (Array.isArray(value)) return value.map((v) => redactDeep(v, redact)) as T;
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactDeep(v, redact)])) as T;
  return value;
}
