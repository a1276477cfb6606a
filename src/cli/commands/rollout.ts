/** `arena-deploy rollout [PLAN...]`: move the live fleet to the target plan, one web service at a time. */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { CancelledError, RollbackFailedError, RolledBackError, ValidationError } from '../../errors.js';
import { loadPlan } from '../../plan/load-plan.js';
import type { Plan } from '../../plan/types.js';
import type { ContainerSummary } from '../../engine/engine-client.js';
import { composeTargetOf, type ComposeAction } from '../../engine/compose-commands.js';
import { discoverCurrent } from '../../rollout/discover.js';
import { planRollout, hasWork, type RolloutPolicy } from '../../rollout/plan-rollout.js';
import { checkRollout, executeRollout, type RolloutResult } from '../../rollout/execute-rollout.js';
import { acquireLock } from '../../rollout/lock.js';
import { beginEntry, isUnfinished, readJournal, rollouts } from '../../rollout/journal.js';
import { renderDryRun, renderSummary } from '../../report/render-rollout.js';
import { redactText } from '../../util/redact.js';
import { stateDir } from '../../util/state-dir.js';
import { analyzeWithConfigs, engineHost } from '../../analysis/plan-analysis.js';
import { groupFindings } from '../../report/render-analysis.js';
import { packageRoot } from '../../util/package-root.js';
import { chooseRenderer, type Context } from '../context.js';

/** The plan used when none is given. */
export const DEFAULT_PLAN = path.join('plans', 'docker-compose.loadbalanced.optimized.yml');

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
  /** Poll interval of health waits; tests shorten it. */
  readonly pollMs?: number | undefined;
}

/** Resolves the target files: the flags, else the default plan in the working directory, else the packaged one. */
export function resolvePlanFiles(files: readonly string[], cwd: string): string[] {
  if (files.length > 0) return files.map((f) => path.resolve(cwd, f));
  const local = path.resolve(cwd, DEFAULT_PLAN);
  return [existsSync(local) ? local : path.join(packageRoot, DEFAULT_PLAN)];
}

/** Collects the values the plans mark sensitive, so nothing printed shows them. */
export function registerSecrets(secrets: Set<string>, ...plans: Plan[]): void {
  for (const p of plans) for (const s of Object.values(p.services)) for (const v of Object.values(s.environment)) if (v.sensitive && v.value) secrets.add(v.value);
}

/** Runs the rollout command; returns the exit code or throws a typed error. */
export async function rolloutCommand(ctx: Context, opts: RolloutOptions): Promise<number> {
  const files = resolvePlanFiles(opts.files, ctx.cwd);
  const target = loadPlan({ files, projectName: opts.project, env: ctx.env });
  const info = await ctx.engine.ping();
  await ctx.compose.version();
  const currentFiles = opts.current?.map((f) => path.resolve(ctx.cwd, f));
  if (currentFiles?.length && !opts.project) {
    // Without --project, --current and the target must name the same compose project.
    const own = loadPlan({ files: currentFiles, env: ctx.env }).project;
    if (own !== target.project) throw new ValidationError(`--current ${currentFiles.join(', ')} belongs to compose project "${own}" but the target plan to "${target.project}": a rollout stays within one project (pass --project to name it).`);
  }
  const current = await discoverCurrent(ctx.engine, target.project, currentFiles, info.endpoint);
  registerSecrets(ctx.secrets, target, current.plan);
  const redact = (t: string) => redactText(t, ctx.secrets);

  // compose's own dry run decides what changed; when compose rejects the files, the validate step says so.
  const composeView = await composeVerdicts(ctx, target, current.live, Object.keys(target.services));
  const warnings = await staleCurrentFiles(ctx, current.plan, current.live);

  const policy: RolloutPolicy = {
    services: opts.services,
    include: opts.include ?? [],
    parallelism: opts.parallelism,
    delayMs: opts.delayMs,
    monitorMs: opts.monitorMs,
    healthTimeoutMs: opts.healthTimeoutMs,
  };
  const plan = planRollout({ target, current: current.plan, live: current.live, composeView, policy });
  // The same analysis as `validate`, against the engine's host: errors stop the rollout before anything is touched.
  const analysis = analyzeWithConfigs(target, engineHost(target, info));
  const groups = groupFindings(analysis.findings);
  const errors = groups.filter((g) => g.severity === 'error');
  const analysisWarnings = groups.filter((g) => g.severity === 'warning').map((g) => `${g.rule} [${g.services.join(', ') || 'host'}]: ${g.message}`);
  const allWarnings = [...plan.warnings, ...warnings, ...analysisWarnings];
  const analysisError = () =>
    new ValidationError(`The target plan would fail on ${info.endpoint}: ${errors[0]?.message}${(errors[0]?.services.length ?? 0) > 1 ? ` The same for ${errors[0]?.services.slice(1).join(', ')}.` : ''}${errors.length > 1 ? ` (And ${errors.length - 1} more error${errors.length > 2 ? 's' : ''}.)` : ''}`, {
      hints: [`\`arena-deploy validate ${plan.targetFiles.map((f) => path.relative(ctx.cwd, f) || f).join(' ')}\` shows the whole analysis; --force rolls out anyway.`],
    });
  if (errors.length && opts.force) {
    ctx.io.stderr.write(`\nWARNING: --force: rolling out a plan with ${errors.length} analysis error${errors.length === 1 ? '' : 's'}:\n${errors.map((e) => `  ${e.rule} [${e.services.join(', ') || 'host'}]: ${e.message}`).join('\n')}\n\n`);
  }
  const checkDeps = { engine: ctx.engine, compose: ctx.compose, target, current: current.plan, live: current.live, force: Boolean(opts.force) };

  if (opts.dryRun) {
    const notes = await checkRollout(plan, checkDeps);
    if (ctx.signal.aborted) throw new CancelledError('Interrupted; nothing was changed.');
    ctx.io.stdout.write(redact(renderDryRun({ ...plan, warnings: allWarnings }, notes)));
    if (errors.length && !opts.force) throw analysisError();
    return 0;
  }
  if (errors.length && !opts.force) throw analysisError();
  if (!hasWork(plan)) {
    await checkRollout(plan, checkDeps);
    ctx.io.stdout.write(`Nothing to do: every service of ${plan.project} already runs the target config.\n`);
    for (const w of allWarnings) ctx.io.stderr.write(`warning: ${redact(w)}\n`);
    return 0;
  }

  const state = stateDir(opts.stateDir, ctx.env);
  const lock = await acquireLock(path.join(state, 'locks'), plan.project, plan.targetFiles);
  let result: RolloutResult;
  try {
    const earlier = rollouts((await readJournal(state)).records).filter((r) => r.started.project === plan.project && isUnfinished(r));
    for (const r of earlier) ctx.io.stderr.write(`warning: an earlier rollout of ${plan.project} (${r.started.id}, by ${r.started.user}@${r.started.host} at ${r.started.at}) never finished: the fleet may be part old, part new; \`arena-deploy history\` lists it.\n`);
    const entry = await beginEntry(state, plan.project, plan.targetFiles);
    ctx.io.stderr.write(`Rolling out ${plan.project} on ${info.endpoint}: ${plan.currentFiles.map((f) => path.basename(f)).join(', ')} → ${plan.targetFiles.map((f) => path.basename(f)).join(', ')}\n`);
    for (const w of allWarnings) ctx.io.stderr.write(`warning: ${redact(w)}\n`);
    result = await executeRollout(plan, {
      ...checkDeps,
      clock: ctx.clock,
      backupRoot: path.join(state, 'backups'),
      signal: ctx.signal,
      renderer: chooseRenderer(ctx.io, ctx.env),
      progress: ctx.io.stderr,
      redact,
      pollMs: opts.pollMs,
    });
    await entry.finish({
      outcome: result.outcome,
      durationMs: result.durationMs,
      changed: result.services.filter((x) => ['updated', 'created', 'retired', 'rolled back', 'removed (rolled back)', 'rollback failed', 'failed'].includes(x.result)).map((x) => x.service),
      backup: result.backupDir ?? null,
      verdict: redact(result.verdict),
    });
  } finally {
    await lock.release();
  }
  ctx.io.stdout.write(`\n${redact(renderSummary(result))}`);
  if (analysisWarnings.length) ctx.io.stdout.write(`Plan warnings (${analysisWarnings.length}): ${groups.filter((g) => g.severity === 'warning').map((g) => g.rule).join(', ')}; \`arena-deploy validate\` explains them.\n`);
  // The verdict is the last line on stdout whatever the outcome; failures also end with it as the error on stderr.
  ctx.io.stdout.write(`${redact(result.verdict)}\n`);
  switch (result.outcome) {
    case 'succeeded':
      return 0;
    case 'rolled-back':
      throw new RolledBackError(redact(result.verdict));
    case 'interrupted':
      throw new CancelledError(redact(result.verdict));
    case 'rollback-failed':
      throw new RollbackFailedError(redact(result.verdict), {
        hints: [
          'Each service above says which config it is on; `docker compose ps` shows the containers.',
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
