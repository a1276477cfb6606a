/** `arena-deploy rollback [--to BACKUP]`: bring the fleet back to a backup's config, after checking the backup is whole. */
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { RollbackFailedError, UsageError } from '../../errors.js';
import { restoreDirectory, verifyBackup } from '../../backup/create-backup.js';
import { acquireLock, describeTakeOver } from '../../rollout/lock.js';
import { beginEntry, newEntryId, openRollouts, readJournal, rollouts } from '../../rollout/journal.js';
import { stateDir } from '../../util/state-dir.js';
import { waitForComposeOf } from '../../engine/orphans.js';
import { reloadNginxOf, restoreDrainedFiles } from '../../rollout/drain.js';
import type { Context } from '../context.js';
import { timedStep, type EventSink } from '../../report/events.js';
import { exitCodeOfError, outcomeOfError, reportOf, type FinalReport } from '../../report/json-report.js';
import { deliverReport, interruptedCodeOf, NdjsonWriter, planFileSums } from '../report-output.js';
import { redactText } from '../../util/redact.js';

/** Flags of `rollback`. */
export interface RollbackOptions {
  /** Required unless --to names the backup (its manifest says the project). */
  readonly project?: string | undefined;
  readonly to?: string | undefined;
  readonly stateDir?: string | undefined;
  readonly timeoutS: number;
  readonly breakLock?: boolean | undefined;
  /** text (default) or json: NDJSON events and a final report on stdout. */
  readonly output?: 'text' | 'json' | undefined;
}

/** What the final report needs, learned as the rollback goes. */
interface RollbackFacts {
  project?: string;
  engine?: string;
  files?: string[];
  backupDir?: string;
  verdict?: string;
}

/**
 * The rollback command; with `--output json` its events and a final report (outcome restored / restore-failed, or
 * refused / invalid) go to stdout as NDJSON, and with GITHUB_STEP_SUMMARY set a markdown summary is appended there.
 */
export async function rollbackCommand(ctx: Context, opts: RollbackOptions): Promise<number> {
  const summaryFile = ctx.env['GITHUB_STEP_SUMMARY'];
  if (opts.output !== 'json' && !summaryFile) return runRollback(ctx, opts, {});
  const id = newEntryId();
  const redact = (t: string) => redactText(t, ctx.secrets);
  const writer = opts.output === 'json' ? new NdjsonWriter(ctx.io.stdout, id, redact) : undefined;
  const facts: RollbackFacts = {};
  const started = ctx.clock.now();
  let report: FinalReport | undefined;
  const make = (outcome: FinalReport['outcome'], verdict: string, exitCode: number) =>
    reportOf(id, { command: 'rollback', project: facts.project, engine: facts.engine, planFiles: facts.files && planFileSums(facts.files) }, { outcome, verdict, exitCode, durationMs: ctx.clock.now() - started, backupDir: facts.backupDir ?? null });
  try {
    const code = await runRollback(ctx, opts, facts, writer?.sink, id);
    report = make('restored', facts.verdict ?? 'Restored.', code);
    return code;
  } catch (err) {
    const outcome = outcomeOfError(err);
    report = make(outcome === 'rollback-failed' ? 'restore-failed' : outcome, redact(err instanceof Error ? err.message : String(err)), exitCodeOfError(err, interruptedCodeOf(ctx.signal)));
    throw err;
  } finally {
    if (report) await deliverReport(report, { writer, summaryFile, redact, warn: (l) => ctx.io.stderr.write(l) });
  }
}

/** The newest complete backup folder of a project (names are UTC timestamps, so they sort by time). */
async function newestBackup(root: string, project: string): Promise<string> {
  const dir = path.join(root, 'backups', project);
  const names = await fs.readdir(dir).catch(() => [] as string[]);
  // A folder without manifest.json is a backup that never finished (the tool killed while writing it): not a candidate.
  const newest = names.filter((n) => /^\d{8}T\d{9}Z/.test(n) && existsSync(path.join(dir, n, 'manifest.json'))).sort().pop();
  if (!newest) throw new UsageError(`No backup of ${project} in ${dir}: name one with --to BACKUP_DIR.`);
  return path.join(dir, newest);
}

/** Verifies the backup's sums, then lets compose converge the project to the backup's files and waits for health. */
async function runRollback(ctx: Context, opts: RollbackOptions, facts: RollbackFacts, sink?: EventSink, rollbackId?: string): Promise<number> {
  const out = sink ? ctx.io.stderr : ctx.io.stdout;
  const state = stateDir(opts.stateDir, ctx.env);
  if (!opts.to && !opts.project) throw new UsageError('name the project with --project, or the backup with --to BACKUP_DIR.');
  const dir = opts.to ? path.resolve(ctx.cwd, opts.to) : await newestBackup(state, opts.project as string);
  if (opts.to && !existsSync(dir)) throw new UsageError(`--to ${opts.to}: there is no such backup folder; \`arena-deploy history --output json\` shows each rollout's backup.`);
  const manifest = await verifyBackup(dir);
  if (opts.project && manifest.project !== opts.project) throw new UsageError(`The backup ${dir} is of project "${manifest.project}", not "${opts.project}".`);
  const project = manifest.project;
  facts.project = project;
  facts.backupDir = dir;
  const info = await ctx.engine.ping();
  facts.engine = info.endpoint;
  await ctx.compose.version();
  const files = manifest.composeFiles.map((f) => path.join(dir, f.stored));
  facts.files = files;
  // Undoing an interrupted rollout: its stale lock is taken over without --break-lock.
  const open = openRollouts(rollouts((await readJournal(state)).records), project);
  const id = rollbackId ?? newEntryId();
  const lock = await acquireLock(path.join(state, 'locks'), project, files, { rollout: id, breakLock: opts.breakLock, takeOverFrom: open[open.length - 1]?.started.id });
  if (lock.tookOver) ctx.io.stderr.write(`${describeTakeOver(lock)}\n`);
  const started = ctx.clock.now();
  try {
    // A killed rollout's compose may still be finishing a recreate: two composes would race for the container names.
    await waitForComposeOf(project, (l) => ctx.io.stderr.write(l));
    // Under the lock: a killed rollout may have left services marked down in an nginx conf; the backup's bytes go back first.
    await restoreDrainedFiles(dir, manifest, ctx.engine, (l) => ctx.io.stderr.write(`${l}\n`));
    const where = await restoreDirectory(dir, manifest);
    ctx.io.stderr.write(`Restoring ${project} on ${info.endpoint} from ${dir} (sums verified${where.fromBackup ? '; referenced files changed since, so the backup\'s copies are used' : ''})...\n`);
    const entry = await beginEntry(state, project, files, { id, kind: 'rollback' });
    let outcome = 'restored';
    let verdict = `Restored ${project} to the backup of ${manifest.createdAt}: every service runs the backed-up config and is healthy.`;
    try {
      // compose converges: recreates what differs from the backup, removes what the backup does not have, waits for health.
      sink?.({ type: 'rollout-started', project, engine: info.endpoint, plan: files, current: [] });
      await timedStep(sink, () => ctx.clock.now(), { step: 'restore' }, () => ctx.compose.upAll({ project: project, files, projectDirectory: where.projectDirectory }, { wait: true, timeoutS: opts.timeoutS }));
      // The web services compose recreated have new addresses: nginx resolves them only when it reloads.
      if (await reloadNginxOf(ctx.engine, project, manifest.referencedFiles.flatMap((f) => [f.original, path.join(dir, f.stored)]), () => {})) ctx.io.stderr.write('Reloaded nginx, so that it resolves the restored containers.\n');
    } catch (err) {
      outcome = 'restore-failed';
      verdict = `The restore of ${project} from ${dir} did not finish healthy: ${(err as { firstStderrLine?: string }).firstStderrLine || (err as Error).message}`;
      throw new RollbackFailedError(verdict, { cause: err, hints: ['`docker compose ps` shows which services run; the backup is unchanged, and the command can be run again.'] });
    } finally {
      await entry.finish({ outcome, durationMs: ctx.clock.now() - started, changed: [], backup: dir, verdict });
    }
    facts.verdict = verdict;
    out.write(`${verdict}\n`);
    return 0;
  } finally {
    await lock.release();
  }
}
