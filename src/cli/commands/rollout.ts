/** `arena-deploy rollout [PLAN...]`: move the live fleet to the target plan, one web service at a time. */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { CancelledError, EngineUnreachableError, LockError, RollbackFailedError, RolledBackError, UsageError, ValidationError } from '../../errors.js';
import { loadPlan } from '../../plan/load-plan.js';
import type { Plan } from '../../plan/types.js';
import type { ContainerSummary } from '../../engine/engine-client.js';
import { composeTargetOf, type ComposeAction } from '../../engine/compose-commands.js';
import { discoverCurrent } from '../../rollout/discover.js';
import { planRollout, hasWork, type RolloutPolicy } from '../../rollout/plan-rollout.js';
import { checkRollout, executeRollout, type Change, type RolloutResult } from '../../rollout/execute-rollout.js';
import { acquireLock, checkLock, describeTakeOver } from '../../rollout/lock.js';
import { compactNames } from '../../util/names.js';
import { beginEntry, journalFile, newEntryId, openRollouts, planHash, readJournal, rollouts, type RolloutEntry } from '../../rollout/journal.js';
import { restoreDirectory, verifyBackup, type Backup } from '../../backup/create-backup.js';
import { restoreDrainedFiles } from '../../rollout/drain.js';
import { DEFAULT_PLAN } from '../default-plan.js';
import { Outage, retryingCompose, retryingEngine } from '../../engine/retry.js';
import { waitForComposeOf } from '../../engine/orphans.js';
import { formatElapsed } from '../../plan/units.js';
import { renderDryRun, renderSummary } from '../../report/render-rollout.js';
import { redactText } from '../../util/redact.js';
import { stateDir } from '../../util/state-dir.js';
import { analyzeWithConfigs, engineHost } from '../../analysis/plan-analysis.js';
import { groupFindings } from '../../report/render-analysis.js';
import { packageRoot } from '../../util/package-root.js';
import { remoteFileCheck } from '../../rollout/host-files.js';
import { chooseRenderer, type Context } from '../context.js';
import { checkDryRunFlags, offlineDryRun, registerPlanSecrets, writeDryRun, type OutputFormat } from './dry-run.js';
import type { HostFlags } from '../../analysis/plan-analysis.js';
import { confirm, shouldConfirm } from '../confirm.js';
import type { EventSink } from '../../report/events.js';
import { exitCodeOfError, outcomeOfError, reportOf, reportOfResult, type FinalReport, type ReportContext } from '../../report/json-report.js';
import { deliverReport, interruptedCodeOf, NdjsonWriter, planFileSums } from '../report-output.js';
import { timestampLines } from '../timestamp-lines.js';

/** The plan used when none is given. */
export { DEFAULT_PLAN };

/** Flags of `rollout`, parsed. */
export interface RolloutOptions {
  readonly files: readonly string[];
  readonly current?: readonly string[] | undefined;
  readonly project?: string | undefined;
  readonly services?: string | undefined;
  readonly include?: readonly string[] | undefined;
  readonly parallelism?: number | undefined;
  readonly delayMs?: number | undefined;
  readonly monitorMs?: number | undefined;
  readonly healthTimeoutMs?: number | undefined;
  readonly force?: boolean | undefined;
  readonly dryRun?: boolean | undefined;
  readonly stateDir?: string | undefined;
  /** Finish the project's interrupted rollout: its plan, its backup, what it changed. */
  readonly resume?: boolean | undefined;
  /** Take over a stale lock (or one held from another host) and start although an earlier rollout never finished. */
  readonly breakLock?: boolean | undefined;
  /** How long engine and compose calls are retried when the engine stops answering mid-rollout (default 60 s). */
  readonly engineTimeoutMs?: number | undefined;
  /** Poll interval of health waits; tests shorten it. */
  readonly pollMs?: number | undefined;
  /** Drain each web service out of nginx before it is stopped (default true; `--no-drain`). */
  readonly drain?: boolean | undefined;
  readonly probe?: boolean | undefined;
  /** text (default); json: NDJSON events and a final report on stdout (with --dry-run, one object); markdown: the dry run for a reviewer. */
  readonly output?: OutputFormat | undefined;
  /** Dry run with no engine at all, from --current (every service assumed running). */
  readonly offline?: boolean | undefined;
  /** Host capacity for the offline analysis. */
  readonly host?: HostFlags | undefined;
  /** Do not ask "Roll out? [y/N]" on a terminal. */
  readonly yes?: boolean | undefined;
}

/** What a run learned as it went, for the final report however it ends. */
interface RunFacts {
  readonly id: string;
  project?: string;
  engine?: string;
  planFiles?: readonly string[];
  warnings: string[];
  result?: RolloutResult;
  /** The verdict of a run that ended without a rollout result (nothing to do). */
  verdict?: string;
}


/**
 * Runs the rollout command; returns the exit code or throws a typed error. With `--output json` the events go to stdout
 * as NDJSON and the last line is the final report, also when the rollout is refused; with GITHUB_STEP_SUMMARY set, a
 * markdown summary is appended to that file.
 */
export async function rolloutCommand(ctx: Context, opts: RolloutOptions): Promise<number> {
  // The dry run's renderings (text, markdown, json) and its flags are the dry run's business.
  checkDryRunFlags(opts);
  if (opts.offline) {
    const policy = { services: opts.services, include: opts.include ?? [], parallelism: opts.parallelism, delayMs: opts.delayMs, monitorMs: opts.monitorMs, healthTimeoutMs: opts.healthTimeoutMs };
    return offlineDryRun(ctx, resolvePlanFiles(opts.files, ctx.cwd), { current: opts.current ?? [], project: opts.project, output: opts.output ?? 'text', policy, host: opts.host ?? {}, force: opts.force });
  }
  const summaryFile = ctx.env['GITHUB_STEP_SUMMARY'];
  const json = !opts.dryRun && opts.output === 'json';
  if (opts.dryRun || (!json && !summaryFile)) return runRollout(ctx, opts, { id: newEntryId(), warnings: [] });
  const facts: RunFacts = { id: newEntryId(), warnings: [] };
  const redact = (t: string) => redactText(t, ctx.secrets);
  const writer = json ? new NdjsonWriter(ctx.io.stdout, facts.id, redact) : undefined;
  const started = ctx.clock.now();
  const reportCtx = (): ReportContext => ({ command: 'rollout', project: facts.project, engine: facts.engine, planFiles: facts.planFiles && planFileSums(facts.planFiles), warnings: facts.warnings });
  let report: FinalReport | undefined;
  try {
    const code = await runRollout(ctx, opts, facts, writer?.sink);
    report = facts.result
      ? reportOfResult(facts.id, facts.result, reportCtx(), code)
      : reportOf(facts.id, reportCtx(), { outcome: 'nothing-to-do', verdict: facts.verdict ?? 'Nothing to do.', exitCode: code, durationMs: ctx.clock.now() - started });
    return code;
  } catch (err) {
    const code = exitCodeOfError(err, interruptedCodeOf(ctx.signal));
    report = facts.result
      ? reportOfResult(facts.id, facts.result, reportCtx(), code)
      : reportOf(facts.id, reportCtx(), { outcome: outcomeOfError(err), verdict: redact(err instanceof Error ? err.message : String(err)), exitCode: code, durationMs: ctx.clock.now() - started });
    throw err;
  } finally {
    if (report) await deliverReport(report, { writer, summaryFile, redact, warn: (l) => ctx.io.stderr.write(l) });
  }
}

/** Resolves the target files: the flags, else the default plan in the working directory, else the packaged one. */
export function resolvePlanFiles(files: readonly string[], cwd: string): string[] {
  if (files.length > 0) return files.map((f) => path.resolve(cwd, f));
  const local = path.resolve(cwd, DEFAULT_PLAN);
  return [existsSync(local) ? local : path.join(packageRoot, DEFAULT_PLAN)];
}

/** Default of --engine-timeout. */
export const DEFAULT_ENGINE_TIMEOUT_MS = 60_000;

/** The interrupted rollout `--resume` continues, and its plan files (checked to be unchanged). */
function pickResume(entries: readonly RolloutEntry[], opts: RolloutOptions, cwd: string, journal: string): { entry: RolloutEntry; files: string[] } {
  const open = openRollouts(entries, opts.project);
  if (open.length === 0) throw new UsageError(`Nothing to resume: ${journal} has no unfinished rollout${opts.project ? ` of ${opts.project}` : ''}.`);
  const projects = [...new Set(open.map((e) => e.started.project))];
  if (projects.length > 1) throw new UsageError(`Rollouts of several projects never finished (${projects.join(', ')}): name one with --project.`);
  const entry = open[open.length - 1] as RolloutEntry;
  const files = [...entry.started.plan];
  if (opts.files.length) {
    const given = resolvePlanFiles(opts.files, cwd);
    if (given.join('\n') !== files.join('\n')) throw new UsageError(`--resume continues rollout ${entry.started.id} to ${files.join(', ')}: give no plan files, or exactly those.`);
  }
  const gone = files.filter((f) => !existsSync(f));
  if (gone.length) throw new ValidationError(`The plan of the interrupted rollout ${entry.started.id} is gone (${gone.join(', ')}): \`arena-deploy rollback --project ${entry.started.project}\` restores its backup.`);
  const hash = planHash(files);
  if (hash !== entry.started.planHash) {
    throw new ValidationError(`The plan of the interrupted rollout ${entry.started.id} changed since it started (sha256 ${entry.started.planHash.slice(0, 12)} → ${hash.slice(0, 12)}): resuming would mix three configs. \`arena-deploy rollback --project ${entry.started.project}\` restores its backup; then roll out the new plan.`);
  }
  return { entry, files };
}

function describeOpen(e: RolloutEntry): string {
  const changed = e.changing.map((c) => c.service);
  return `rollout ${e.started.id} of ${e.started.project} by ${e.started.user}@${e.started.host} at ${e.started.at} to ${e.started.plan.map((f) => path.basename(f)).join(', ')} never finished (${e.finished ? 'the engine stopped answering' : 'its process is gone'}); it had changed ${changed.length ? compactNames(changed) : 'no service yet'}`;
}


/** The rollout itself; `facts` collects what the final report needs, `sink` receives the events. */
async function runRollout(baseCtx: Context, opts: RolloutOptions, facts: RunFacts, sink?: EventSink): Promise<number> {
  const state = stateDir(opts.stateDir, baseCtx.env);
  const history = rollouts((await readJournal(state)).records);
  const resuming = opts.resume ? pickResume(history, opts, baseCtx.cwd, journalFile(state)) : undefined;
  const files = resuming ? resuming.files : resolvePlanFiles(opts.files, baseCtx.cwd);
  facts.planFiles = files;
  const target = loadPlan({ files, projectName: opts.project ?? resuming?.entry.started.project, env: baseCtx.env });
  facts.project = target.project;
  // The first call is not retried: an engine that is not there at all is one sentence and exit 4 at once.
  const info = await baseCtx.engine.ping();
  facts.engine = info.endpoint;
  await baseCtx.compose.version();
  const outage = new Outage({
    maxMs: opts.engineTimeoutMs ?? DEFAULT_ENGINE_TIMEOUT_MS,
    endpoint: info.endpoint,
    onOutage: (e: { state: 'lost' | 'back'; reason: string }) => {
      baseCtx.io.stderr.write(
        e.state === 'lost'
          ? `warning: the Docker engine at ${info.endpoint} stopped answering (${e.reason}); retrying for up to ${formatElapsed(opts.engineTimeoutMs ?? DEFAULT_ENGINE_TIMEOUT_MS)}.\n`
          : `The Docker engine at ${info.endpoint} answers again (${e.reason}); carrying on.\n`,
      );
    },
  });
  // Without a terminal, every progress line starts with a timestamp (the error that ends a failed run stays plain).
  const renderer = chooseRenderer(baseCtx.io, baseCtx.env);
  const io = renderer === 'simple' ? { ...baseCtx.io, stderr: timestampLines(baseCtx.io.stderr) } : baseCtx.io;
  // One tracker for both: an outage seen by dockerode and compose at once is said once, and counted once.
  const ctx: Context = { ...baseCtx, io, engine: retryingEngine(baseCtx.engine, outage), compose: retryingCompose(baseCtx.compose, outage) };
  // In json mode stdout carries only NDJSON: the human summary goes to stderr.
  const human = sink ? ctx.io.stderr : ctx.io.stdout;
  // Continuing after a killed run: its compose may still be finishing a recreate; the fleet is read after it is done.
  if (resuming || opts.breakLock) await waitForComposeOf(target.project, (l) => ctx.io.stderr.write(l));
  const currentFiles = opts.current?.map((f) => path.resolve(ctx.cwd, f));
  if (currentFiles?.length && !opts.project) {
    // Without --project, --current and the target must name the same compose project.
    const own = loadPlan({ files: currentFiles, env: ctx.env }).project;
    if (own !== target.project) throw new ValidationError(`--current ${currentFiles.join(', ')} belongs to compose project "${own}" but the target plan to "${target.project}": a rollout stays within one project (pass --project to name it).`);
  }
  // Resuming, the old config is the interrupted rollout's backup: the containers' labels are part old, part new by now.
  let existingBackup: Backup | undefined;
  let priorChanges: Change[] = [];
  let current: { live: readonly ContainerSummary[]; plan: Plan };
  if (resuming?.entry.backup) {
    const dir = resuming.entry.backup;
    const manifest = await verifyBackup(dir);
    // The killed run may have left services marked down in an nginx conf: put it back first (its process is gone).
    await restoreDrainedFiles(dir, manifest, ctx.engine, (l) => ctx.io.stderr.write(`${l}\n`));
    const where = await restoreDirectory(dir, manifest);
    existingBackup = { dir, manifest };
    priorChanges = resuming.entry.changing.map((c) => ({ service: c.service, kind: c.change }));
    current = {
      live: await ctx.engine.listProject(target.project),
      plan: loadPlan({ files: manifest.composeFiles.map((f) => path.join(dir, f.stored)), projectName: target.project, projectDirectory: where.projectDirectory, env: ctx.env }),
    };
  } else {
    current = await discoverCurrent(ctx.engine, target.project, currentFiles, info.endpoint);
  }
  registerPlanSecrets(ctx.secrets, target, current.plan);
  const redact = (t: string) => redactText(t, ctx.secrets);

  // compose's own dry run decides what changed; when compose rejects the files, the validate step says so.
  const composeView = await composeVerdicts(ctx, target, current.live, Object.keys(target.services));
  const warnings = resuming ? [] : await staleCurrentFiles(ctx, current.plan, current.live);
  warnings.push(...(await missingRollbackImages(ctx, current.live, current.plan)));
  const open = resuming ? [] : openRollouts(history, target.project);

  const policy: RolloutPolicy = {
    services: opts.services,
    include: opts.include ?? [],
    parallelism: opts.parallelism,
    delayMs: opts.delayMs,
    monitorMs: opts.monitorMs,
    healthTimeoutMs: opts.healthTimeoutMs,
  };
  const plan = planRollout({ target, current: current.plan, live: current.live, composeView, policy, inFlight: resuming?.entry.inFlight });
  // The same analysis as `validate`, against the engine's host: errors stop the rollout before anything is touched.
  const analysis = analyzeWithConfigs(target, engineHost(target, info));
  const groups = groupFindings(analysis.findings);
  const errors = groups.filter((g) => g.severity === 'error');
  const analysisWarnings = groups.filter((g) => g.severity === 'warning').map((g) => `${g.rule} [${g.services.join(', ') || 'host'}]: ${g.message}`);
  const allWarnings = [...plan.warnings, ...warnings, ...analysisWarnings];
  facts.warnings.push(...allWarnings.map(redact));
  const warnAll = () => {
    for (const w of allWarnings) {
      ctx.io.stderr.write(`warning: ${redact(w)}\n`);
      sink?.({ type: 'warning', message: w });
    }
  };
  const analysisError = () =>
    new ValidationError(`The target plan would fail on ${info.endpoint}: ${errors[0]?.message}${(errors[0]?.services.length ?? 0) > 1 ? ` The same for ${errors[0]?.services.slice(1).join(', ')}.` : ''}${errors.length > 1 ? ` (And ${errors.length - 1} more error${errors.length > 2 ? 's' : ''}.)` : ''}`, {
      hints: [`\`arena-deploy validate ${plan.targetFiles.map((f) => path.relative(ctx.cwd, f) || f).join(' ')}\` shows the whole analysis; --force rolls out anyway.`],
    });
  if (errors.length && opts.force) {
    ctx.io.stderr.write(`\nWARNING: --force: rolling out a plan with ${errors.length} analysis error${errors.length === 1 ? '' : 's'}:\n${errors.map((e) => `  ${e.rule} [${e.services.join(', ') || 'host'}]: ${e.message}`).join('\n')}\n\n`);
  }
  const checkDeps = { engine: ctx.engine, compose: ctx.compose, target, current: current.plan, live: current.live, force: Boolean(opts.force), priorChanges };
  const checkWithEvents = { ...checkDeps, events: sink, clock: ctx.clock };
  // A remote engine resolves bind-mount sources on its own host: the versions the plan expects must be there (README: Remote engines).
  const updated = plan.steps.flatMap((s) => (s.kind === 'update' ? s.updates.map((u) => u.service) : []));
  const hostFiles = info.remote ? await remoteFileCheck(ctx.engine, { target, current: current.plan, updated, live: current.live }) : undefined;

  if (opts.dryRun) {
    for (const e of open) ctx.io.stderr.write(`warning: ${describeOpen(e)}.\n`);
    const notes = [...(await checkRollout(plan, checkDeps)), ...(hostFiles?.problems.map((p) => p.message) ?? [])];
    if (ctx.signal.aborted) throw new CancelledError('Interrupted; nothing was changed.');
    if (opts.output === 'markdown' || opts.output === 'json') {
      const dry = { plan, target, current: current.plan, mode: 'online' as const, engine: info.endpoint, composeAnswered: composeView !== undefined, host: engineHost(target, info), targetAnalysis: analysis };
      writeDryRun(ctx, opts.output, { ...dry, warnings: [...warnings, ...notes] });
    } else ctx.io.stdout.write(redact(renderDryRun({ ...plan, warnings: allWarnings }, notes)));
    if (errors.length && !opts.force) throw analysisError();
    return 0;
  }
  if (errors.length && !opts.force) throw analysisError();
  if (!hasWork(plan)) {
    await checkRollout(plan, checkWithEvents);
    facts.verdict = `Nothing to do: every service of ${plan.project} already runs the target config.`;
    human.write(`${facts.verdict}\n`);
    warnAll();
    return 0;
  }

  // A rollout that never finished left the fleet part old, part new: a new one on top would back up that mix as "old".
  const newest = open[open.length - 1];
  if (newest && !opts.breakLock) {
    throw new LockError(`An earlier ${describeOpen(newest)}: the fleet may be part old, part new.`, {
      hints: [
        `\`arena-deploy rollout --resume --project ${plan.project}\` finishes it; \`arena-deploy rollback --project ${plan.project}\` restores its backup${newest.backup ? ` (${newest.backup})` : ''}.`,
        '`arena-deploy status` shows which service runs which config; --break-lock starts this rollout anyway.',
      ],
    });
  }
  if (newest) ctx.io.stderr.write(`warning: --break-lock: starting although the ${describeOpen(newest)}.\n`);
  // Everything that can refuse the rollout runs before the lock and the journal: a refused rollout writes nothing.
  // The lock first: while another rollout runs, its half-recreated containers are its business, not a preflight failure.
  const lockOptions = { rollout: facts.id, breakLock: opts.breakLock, takeOverFrom: resuming?.entry.started.id };
  await checkLock(path.join(state, 'locks'), plan.project, lockOptions);
  const notes = await checkRollout(plan, checkWithEvents);
  const hostProblem = hostFiles?.problems[0];
  if (hostProblem) {
    throw new ValidationError(hostProblem.message, { hints: hostFiles.problems.length > 1 ? [`${hostFiles.problems.length - 1} more bind-mounted file${hostFiles.problems.length > 2 ? 's differ' : ' differs'}: ${hostFiles.problems.slice(1).map((p) => p.source).join(', ')}.`] : [] });
  }
  if (ctx.signal.aborted) throw new CancelledError('Interrupted; nothing was changed.');
  // A person at a terminal sees the plan and says yes before the lock and the backup; a pipe or CI is never asked.
  if (shouldConfirm({ yes: Boolean(opts.yes), stdinIsTTY: Boolean(ctx.io.stdinIsTTY && ctx.io.stdin), stderrIsTTY: ctx.io.stderrIsTTY })) {
    ctx.io.stderr.write(redact(renderDryRun({ ...plan, warnings: allWarnings }, notes).replace(' (dry run: nothing is changed)', '')));
    await confirm(ctx.io.stdin as NodeJS.ReadableStream, ctx.io.stderr, `\nRoll out ${plan.project} on ${info.endpoint}? [y/N] `, ctx.signal);
  }
  const id = lockOptions.rollout;
  const lock = await acquireLock(path.join(state, 'locks'), plan.project, plan.targetFiles, lockOptions);
  if (lock.tookOver) ctx.io.stderr.write(`${describeTakeOver(lock)}\n`);
  let result: RolloutResult;
  try {
    const entry = await beginEntry(state, plan.project, plan.targetFiles, { id, resumes: resuming?.entry.started.id });
    // The journal failing mid-rollout (the disk filled up, went read-only) stops nothing: the rollout goes on, and says so once.
    let journalWarned = false;
    const journalTrouble = (err: unknown) => {
      if (journalWarned) return;
      journalWarned = true;
      ctx.io.stderr.write(`warning: cannot write the journal in ${state} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): the rollout goes on, but if it is killed now, --resume cannot continue it.\n`);
    };
    if (resuming) {
      // The resume carries the interrupted run's backup and changes forward: a resume killed in turn resumes from them too.
      if (existingBackup) await entry.step({ step: 'backup', backup: existingBackup.dir });
      for (const c of resuming.entry.changing) {
        await entry.step({ step: 'changing', service: c.service, change: c.change });
        if (!resuming.entry.inFlight.includes(c.service)) await entry.step({ step: 'done', service: c.service });
      }
    }
    if (resuming) {
      ctx.io.stderr.write(`Resuming rollout ${resuming.entry.started.id} of ${plan.project} on ${info.endpoint} to ${plan.targetFiles.map((f) => path.basename(f)).join(', ')}${existingBackup ? `, with its backup ${existingBackup.dir}` : ''}${priorChanges.length ? `; it had changed ${compactNames(priorChanges.map((c) => c.service))}` : ''}\n`);
    } else {
      ctx.io.stderr.write(`Rolling out ${plan.project} on ${info.endpoint}: ${plan.currentFiles.map((f) => path.basename(f)).join(', ')} → ${plan.targetFiles.map((f) => path.basename(f)).join(', ')}\n`);
    }
    sink?.({ type: 'rollout-started', project: plan.project, engine: info.endpoint, plan: plan.targetFiles, current: plan.currentFiles, resumes: resuming?.entry.started.id });
    warnAll();
    // The nginx conf nginx reads is a file on the engine's host: the tool, which edits this machine's copy, cannot
    // drain through it there. Said once, before anything changes.
    if (info.remote && opts.drain !== false) ctx.io.stderr.write(`The nginx drain is off with a remote engine: nginx reads its conf on ${info.endpoint}'s host, and the tool edits files on this machine only (README: Remote engines).\n`);
    try {
      result = await executeRollout(plan, {
        ...checkDeps,
        clock: ctx.clock,
        backupRoot: path.join(state, 'backups'),
        remoteFiles: hostFiles?.remoteFiles,
        signal: ctx.signal,
        renderer,
        progress: ctx.io.stderr,
        redact,
        pollMs: opts.pollMs,
        journal: (r) => entry.step(r).catch((err: unknown) => journalTrouble(err)),
        existingBackup,
        priorChanges,
        engineRestarts: () => outage.comebacks,
        drain: opts.drain !== false && !info.remote,
        // A remote engine publishes its ports on its own host: probing 127.0.0.1 here would ask another machine.
        probe: opts.probe !== false && !info.remote,
        localEngine: !info.remote,
        events: sink,
      });
      facts.result = result;
    } catch (err) {
      // Stopped before changing anything (validation, preflight, backup, an early signal): the journal says so, best effort.
      await entry.finish({ outcome: 'not-started', durationMs: 0, changed: [], backup: null, verdict: redact(err instanceof Error ? err.message : String(err)) }).catch(() => {});
      throw err;
    }
    await entry
      .finish({
      outcome: result.outcome,
      durationMs: result.durationMs,
      changed: result.services.filter((x) => ['updated', 'created', 'retired', 'updated earlier', 'retired earlier', 'rolled back', 'removed (rolled back)', 'rollback failed', 'failed'].includes(x.result)).map((x) => x.service),
      backup: result.backupDir ?? null,
      verdict: redact(result.verdict),
      })
      .catch((err: unknown) => journalTrouble(err));
  } finally {
    await lock.release().catch((err: unknown) => ctx.io.stderr.write(`warning: cannot remove the lock ${lock.file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): remove it by hand.\n`));
  }
  human.write(`\n${redact(renderSummary(result, info.endpoint))}`);
  if (outage.comebacks > 0) {
    ctx.io.stderr.write(`warning: the engine stopped answering during the rollout. If it restarted with live-restore, Docker (20.10) does not resume the health checks of the containers it restored: their health stays as it was until they are restarted. The services recreated after it came back are probed again; \`arena-deploy status\` shows the others.\n`);
  }
  if (analysisWarnings.length) human.write(`Plan warnings (${analysisWarnings.length}): ${groups.filter((g) => g.severity === 'warning').map((g) => g.rule).join(', ')}; \`arena-deploy validate\` explains them.\n`);
  // The verdict is the last line on stdout whatever the outcome; failures also end with it as the error on stderr.
  human.write(`${redact(result.verdict)}\n`);
  switch (result.outcome) {
    case 'succeeded':
      return 0;
    case 'rolled-back':
      throw new RolledBackError(redact(result.verdict));
    case 'interrupted':
      throw new CancelledError(redact(result.verdict));
    case 'engine-lost':
      throw new EngineUnreachableError(redact(result.verdict));
    case 'rollback-failed':
      throw new RollbackFailedError(redact(result.verdict), {
        hints: [
          `Fix what the rollback reported (a missing image: build, load or tag it again), then \`arena-deploy rollback --project ${plan.project}\` converges every service to the backup.`,
          'Each service in the table says which config it is on; `arena-deploy status` and `docker compose ps` show the containers.',
          result.backupDir ? `The old config is in ${result.backupDir}: \`docker compose -p ${plan.project} --project-directory ${plan.currentProjectDirectory} -f ${result.backupDir}/compose/… up -d --no-deps SERVICE\` restores one service by hand.` : 'No backup was written.',
        ],
      });
  }
}

/**
 * Asks compose's dry run what it would do per service; undefined when compose cannot say (the validate step then
 * reports why). Only for services without depends_on: compose 2.26's dry run answers "Recreate" for a service with
 * depends_on even when a real `up` answers "Running". (Nor can `config --hash` stand in: `up --no-deps` hashes the
 * service without its dependencies, and `up` folds env_file values into environment first.) For those services the
 * planner's diff of the whole service definition decides.
 */
async function composeVerdicts(ctx: Context, plan: Plan, live: readonly ContainerSummary[], candidates: readonly string[]): Promise<Map<string, ComposeAction> | undefined> {
  const services = candidates.filter((s) => (plan.services[s]?.dependsOn.length ?? 0) === 0);
  if (services.length === 0) return new Map();
  let byContainer: Map<string, ComposeAction>;
  try {
    byContainer = await ctx.compose.pendingChanges(composeTargetOf(plan), services);
  } catch {
    return undefined;
  }
  const out = new Map<string, ComposeAction>();
  for (const [name, action] of byContainer) {
    const service = live.find((c) => c.name === name)?.service ?? services.find((s) => name === `${plan.project}-${s}-1`);
    if (!service) continue;
    // One container to recreate makes the service changed.
    if (out.get(service) !== 'recreate') out.set(service, action);
  }
  return out;
}

/** Warns when an image the current plan names is gone from the engine: a rollback could not recreate those services. */
async function missingRollbackImages(ctx: Context, live: readonly ContainerSummary[], current: Plan): Promise<string[]> {
  const byImage = new Map<string, string[]>();
  for (const service of new Set(live.map((c) => c.service))) {
    const image = current.services[service]?.image;
    if (image) byImage.set(image, [...(byImage.get(image) ?? []), service]);
  }
  const out: string[] = [];
  for (const [image, services] of byImage) {
    if (await ctx.engine.imageExists(image)) continue;
    out.push(`the current config of ${compactNames(services)} names the image ${image}, which the engine no longer has: if the rollout fails, the rollback cannot recreate ${services.length === 1 ? 'that service' : 'those services'}.`);
  }
  return out;
}

/** Warns when the current files on disk no longer describe what the containers run (edited since deployment). */
async function staleCurrentFiles(ctx: Context, current: Plan, live: readonly ContainerSummary[]): Promise<string[]> {
  const services = [...new Set(live.map((c) => c.service))].filter((s) => current.services[s]);
  const view = await composeVerdicts(ctx, current, live, services);
  if (!view) return [];
  const drifted = services.filter((s) => view.get(s) === 'recreate');
  if (drifted.length === 0) return [];
  return [
    `${drifted.join(', ')} ${drifted.length === 1 ? 'runs' : 'run'} a config that differs from ${current.files.join(', ')} as it is on disk now (edited since it was deployed?): the backup and a rollback use the files as they are now.`,
  ];
}
