/** The executor: performs a RolloutPlan as a listr2 task list and rolls back what it changed when a step fails. */
import path from 'node:path';
import { DefaultRenderer, Listr, ListrLogger, ProcessOutput, type ListrTask, type ListrTaskWrapper } from 'listr2';
import { ArenaError, CancelledError, CommandFailedError, EngineUnreachableError, HealthCheckError, PreflightError, ValidationError } from '../errors.js';
import type { ComposeClient } from '../engine/compose-client.js';
import type { ComposeTarget } from '../engine/compose-commands.js';
import type { ContainerDetails, ContainerSummary, EngineClient } from '../engine/engine-client.js';
import { createBackup, restoreDirectory, type Backup } from '../backup/create-backup.js';
import type { Plan } from '../plan/types.js';
import { summarizeChanges } from '../plan/diff-services.js';
import { formatElapsed } from '../plan/units.js';
import { compactNames } from '../util/names.js';
import { healthDeadlineMs, naturalCompare, type RolloutPlan, type ServiceUpdate, type Step } from './plan-rollout.js';
import { probeOnce, probeTargetFor } from './port-probe.js';
import { describeFailure, HealthFrozenError, monitorContainer, ProjectEvents, waitForHealthy, type Clock } from './health-wait.js';
import type { StepRecord } from './journal.js';
import { createDrainer, noDrain, type Drainer } from './drain.js';
import { timedStep, type EventSink, type EventStep } from '../report/events.js';

/** How progress is shown: rich on a terminal, timestamped lines otherwise, nothing in tests. */
export type RendererKind = 'default' | 'simple' | 'silent';

/** Everything the executor needs, wired by the CLI. */
export interface ExecuteDeps {
  readonly engine: EngineClient;
  readonly compose: ComposeClient;
  readonly clock: Clock;
  readonly target: Plan;
  readonly current: Plan;
  readonly live: readonly ContainerSummary[];
  readonly backupRoot: string;
  /** With a remote engine: the current bind-mounted files as they are on the engine's host, kept in the backup. */
  readonly remoteFiles?: (() => Promise<ReadonlyArray<{ readonly path: string; readonly data?: Buffer; readonly reason?: string }>>) | undefined;
  readonly force: boolean;
  readonly signal: AbortSignal;
  readonly renderer: RendererKind;
  /** Where progress and failure details go (stderr; with the simple renderer, a stream that timestamps each line). */
  readonly progress: NodeJS.WriteStream;
  readonly redact: (text: string) => string;
  /** Poll interval of health waits (1 s; tests use less). */
  readonly pollMs?: number;
  /** Records progress in the journal (the backup written, each service before it is changed), awaited before the change. */
  readonly journal?: (record: StepRecord) => Promise<void>;
  /** Resuming: the interrupted rollout's backup, used instead of writing a new one (the fleet is part new by now). */
  readonly existingBackup?: Backup | undefined;
  /** Resuming: what the interrupted rollout changed; rolled back too when this run fails. */
  readonly priorChanges?: readonly Change[];
  /** How many times the engine came back after not answering (the retrying clients count it). */
  readonly engineRestarts?: () => number;
  /** Drain each web service out of nginx before its container is stopped (default true; `--no-drain` turns it off). */
  readonly drain?: boolean;
  /** Receives typed progress events (steps, health changes, rollback steps): `--output json` writes them as NDJSON. */
  readonly events?: EventSink | undefined;
  /**
   * Probe each new container's health URL through its published port beside Docker's health status (README:
   * rollout step 5); only with the local engine. Default false here; the CLI turns it on unless `--no-probe`.
   */
  readonly probe?: boolean;
  /** The engine runs on this host (not remote): the drain may read nginx's connection table from /proc here. */
  readonly localEngine?: boolean;
}

/** Which config a service is on after the run. */
export type ConfigState = 'new' | 'old' | 'gone' | 'unknown';

/** One row of the summary table. */
export interface ServiceResult {
  readonly service: string;
  readonly change: string;
  readonly timeToHealthyMs: number | undefined;
  readonly result: string;
  readonly config: ConfigState;
}

/** What a rollout did. */
export interface RolloutResult {
  readonly outcome: 'succeeded' | 'rolled-back' | 'rollback-failed' | 'interrupted' | 'engine-lost';
  readonly verdict: string;
  readonly services: readonly ServiceResult[];
  readonly backupDir: string | undefined;
  readonly failure: { readonly service: string | undefined; readonly message: string; readonly details: readonly string[] } | undefined;
  readonly rollbackErrors: readonly string[];
  readonly durationMs: number;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type TaskW = ListrTaskWrapper<any, any, any>;

/** A service the rollout changed (or started to change). */
export interface Change {
  readonly service: string;
  readonly kind: 'updated' | 'created' | 'retired';
}

interface RowState {
  change: string;
  timeToHealthyMs: number | undefined;
  result: string;
  config: ConfigState;
}

/** Performs the validate and preflight steps only: the read-only part, also run by --dry-run. */
export async function checkRollout(plan: RolloutPlan, deps: Pick<ExecuteDeps, 'engine' | 'compose' | 'target' | 'current' | 'live' | 'force' | 'priorChanges'> & { readonly events?: EventSink | undefined; readonly clock?: Clock }): Promise<string[]> {
  const now = () => (deps.clock ?? { now: Date.now }).now();
  const notes: string[] = [];
  await timedStep(deps.events, now, { step: 'validate' }, () => validateTarget(plan, deps));
  notes.push(...(await timedStep(deps.events, now, { step: 'preflight' }, async () => preflight(plan, deps), (n) => n.join('; ') || undefined)));
  return notes;
}

async function validateTarget(plan: RolloutPlan, deps: Pick<ExecuteDeps, 'engine' | 'compose' | 'target' | 'current'>): Promise<void> {
  await deps.compose.validate(targetOf(plan));
  if (deps.current.project !== deps.target.project) {
    throw new ValidationError(`The target plan belongs to compose project "${deps.target.project}" but the current deployment is project "${deps.current.project}": pass --project to choose one.`);
  }
  const needed = new Map<string, string[]>();
  for (const step of plan.steps) {
    if (step.kind !== 'update') continue;
    for (const u of step.updates) {
      const svc = deps.target.services[u.service];
      if (!svc) continue;
      const image = svc.image ?? `${plan.project}-${u.service}`;
      needed.set(image, [...(needed.get(image) ?? []), u.service]);
    }
  }
  const missing: string[] = [];
  for (const [image, services] of needed) if (!(await deps.engine.imageExists(image))) missing.push(`${image} (${compactNames(services)})`);
  if (missing.length) {
    throw new ValidationError(`The engine does not have ${missing.length === 1 ? 'the image' : 'the images'} ${missing.join(', ')}: build or load ${missing.length === 1 ? 'it' : 'them'} first (no image is pulled during a rollout).`);
  }
}

function preflight(plan: RolloutPlan, deps: Pick<ExecuteDeps, 'live' | 'force' | 'priorChanges'>): string[] {
  const step = plan.steps.find((s): s is Extract<Step, { kind: 'preflight' }> => s.kind === 'preflight');
  // Resuming, the services the interrupted run touched are this run's to fix, not a reason to refuse it.
  const touched = new Set((deps.priorChanges ?? []).map((c) => c.service));
  const bad = deps.live
    .filter((c) => step?.services.includes(c.service) && !touched.has(c.service))
    .filter((c) => c.state !== 'running' || c.health === 'unhealthy')
    .map((c) => `${c.service} (${c.state === 'running' ? c.health : c.state})`);
  if (bad.length === 0) return [];
  if (deps.force) return [`--force: starting although ${bad.join(', ')} ${bad.length === 1 ? 'is' : 'are'} not healthy`];
  throw new PreflightError(`The current fleet is not healthy: ${bad.join(', ')}. Fix it first, or pass --force to roll out anyway.`);
}

function targetOf(plan: RolloutPlan): ComposeTarget {
  return { project: plan.project, files: plan.targetFiles, projectDirectory: plan.targetProjectDirectory };
}

/** Runs the plan; never throws for a failed rollout, it returns what happened (the CLI maps it to an exit code). */
export async function executeRollout(plan: RolloutPlan, deps: ExecuteDeps): Promise<RolloutResult> {
  const started = deps.clock.now();
  const events = new ProjectEvents(deps.engine, plan.project);
  const changed: Change[] = [...(deps.priorChanges ?? [])];
  const rows = new Map<string, RowState>();
  for (const d of plan.services) {
    rows.set(d.service, {
      change: d.role === 'retired' ? 'retire' : d.role === 'unchanged' ? 'no change' : summarizeChanges(d.changes, 4),
      timeToHealthyMs: undefined,
      result: d.role === 'unchanged' ? 'unchanged' : d.role === 'stateful' ? 'kept (stateful, differs)' : d.role === 'kept' ? 'kept (not in the target)' : 'not started',
      config: d.role === 'unchanged' ? 'new' : d.role === 'added' ? 'gone' : 'old',
    });
  }
  const row = (s: string) => rows.get(s) as RowState;
  // Resuming: what the interrupted run already put on the new config shows as such.
  for (const c of deps.priorChanges ?? []) {
    const r = rows.get(c.service);
    if (r && r.result === 'unchanged') r.result = c.kind === 'retired' ? 'retired earlier' : 'updated earlier';
    if (r && c.kind === 'retired' && r.result === 'retired earlier') r.config = 'gone';
  }
  /** A change is journaled before it is made: a rollout killed halfway still says what it touched. */
  const note = async (c: Change): Promise<void> => {
    changed.push(c);
    await deps.journal?.({ step: 'changing', service: c.service, change: c.kind });
  };
  let backup: Backup | undefined;
  /** Failures in the order they happened: which service, which container, what. */
  const failures: Array<{ service: string; containerId: string | undefined; error: unknown }> = [];
  /**
   * The containers this run created per service, once they passed their monitor window: the final verification counts
   * every restart and die of them since they were created.
   */
  const settled = new Map<string, readonly string[]>();
  const drainer: Drainer = deps.drain === false ? noDrain : createDrainer({
    engine: deps.engine,
    clock: deps.clock,
    project: plan.project,
    current: deps.current,
    log: (l) => deps.progress.write(`${l}\n`),
    hostProc: deps.localEngine === true,
    neverWriteUnder: deps.backupRoot,
  });

  const timed = <T>(step: EventStep, service: string | undefined, container: string | undefined, run: () => Promise<T>, describe?: (v: T) => string | undefined) =>
    timedStep(deps.events, () => deps.clock.now(), { step, service, container }, run, describe);
  /** A drain or put-back as a step event; its message is what the drainer said while it ran (or that nothing names it). */
  const drainStep = (step: 'drain' | 'undrain', service: string, run: () => Promise<string[]>) =>
    timed(step, service, undefined, run, (lines) => lines.join(' ') || (step === 'drain' ? 'no nginx conf of the current plan routes to it' : 'nothing to put back'));
  /** Last health seen per container, for the `health` events (starting → healthy / unhealthy). */
  const lastHealth = new Map<string, string>();
  /** The new containers that counted as healthy by the probe's answer, and the URL that answered. */
  const answeredBy = new Map<string, string>();
  const healthIs = (service: string, container: string, to: string, via?: 'probe' | 'docker') => {
    const from = lastHealth.get(container) ?? null;
    if (from === to) return;
    lastHealth.set(container, to);
    deps.events?.({ type: 'health', service, container, from, to, ...(via ? { via } : {}) });
  };

  const updateOne = async (u: ServiceUpdate, task: TaskW): Promise<void> => {
    // After a signal no new service is started.
    if (deps.signal.aborted) throw new CancelledError(`Interrupted before ${u.service} was started.`);
    let current: string | undefined;
    try {
      // The drain changes no container: it comes before the journal's "changing" record, and an interrupt during its
      // wait stops here, before the recreate (the conf is put back at the end of the run).
      if (u.action === 'recreate' && deps.drain !== false) {
        task.output = 'draining it from nginx';
        await drainStep('drain', u.service, () => drainer.drain(u.service, deps.signal));
        if (deps.signal.aborted) throw new CancelledError(`Interrupted before ${u.service} was recreated (it was being drained from nginx).`);
      }
      task.output = u.action === 'create' ? 'creating' : 'recreating';
      await note({ service: u.service, kind: u.action === 'create' ? 'created' : 'updated' });
      row(u.service).result = 'failed';
      row(u.service).config = 'unknown';
      const { containers, startedAt: t0 } = await recreateUntilHealthy(deps, events, targetOf(plan), plan.project, {
        service: u.service,
        waitFor: u.waitFor,
        deadlineMs: u.healthDeadlineMs,
        signal: deps.signal,
        recreate: (run) => timed('recreate', u.service, undefined, run),
        onRecreated: () => {
          row(u.service).config = 'new';
        },
        wait: (containerId, run) =>
          timed(
            'wait-healthy',
            u.service,
            containerId,
            async () => {
              try {
                const ms = await run();
                const checked = u.waitFor === 'healthy' && deps.target.services[u.service]?.healthcheck;
                healthIs(u.service, containerId, checked ? 'healthy' : 'running', checked ? (answeredBy.has(containerId) ? 'probe' : 'docker') : undefined);
                return ms;
              } catch (err) {
                if (err instanceof HealthCheckError && err.kind !== 'timeout') healthIs(u.service, containerId, err.kind);
                throw err;
              }
            },
            (ms) => `${u.waitFor} after ${formatElapsed(ms)}`,
          ),
        onWaiting: (c, st) => {
          current = c;
          task.output = `${st ?? `waiting for ${u.waitFor}`} (deadline ${formatElapsed(u.healthDeadlineMs)})`;
          if (st?.startsWith('health: ')) healthIs(u.service, c, st.slice('health: '.length));
        },
        onHealthy: (c, via, url) => {
          if (via === 'probe' && url) answeredBy.set(c, url);
        },
        onRetry: () => {
          task.output = 'the engine restarted: recreating again';
        },
      });
      const healthyAfter = deps.clock.now() - t0;
      row(u.service).timeToHealthyMs = healthyAfter;
      // Back into nginx before the monitor window, so that the window watches it under real traffic.
      if (deps.drain !== false && u.action === 'recreate') await drainStep('undrain', u.service, () => drainer.undrain(u.service));
      if (u.monitorMs > 0) task.output = `${u.waitFor} after ${formatElapsed(healthyAfter)}; monitoring for ${formatElapsed(u.monitorMs)}`;
      for (const c of containers) {
        current = c.id;
        if (u.monitorMs > 0) {
          await timed('monitor', u.service, c.id, async () => {
            try {
              await monitorContainer(deps.engine, events, deps.clock, { service: u.service, containerId: c.id, windowMs: u.monitorMs, pollMs: deps.pollMs, signal: deps.signal, fresh: true });
            } catch (err) {
              if (err instanceof HealthCheckError) healthIs(u.service, c.id, err.kind);
              throw err;
            }
          }, () => `stable for ${formatElapsed(u.monitorMs)}`);
        }
      }
      settled.set(u.service, containers.map((c) => c.id));
      await deps.journal?.({ step: 'done', service: u.service });
      row(u.service).result = u.action === 'create' ? 'created' : 'updated';
      const answered = containers.flatMap((c) => answeredBy.get(c.id) ?? []);
      task.title = `${u.service}: ${u.action === 'create' ? 'created' : 'updated'}, ${u.waitFor} after ${formatElapsed(healthyAfter)}${answered.length ? ` (${answered.join(', ')} answered)` : ''}${u.monitorMs > 0 ? `, stable for ${formatElapsed(u.monitorMs)}` : ''}`;
    } catch (err) {
      failures.push({ service: u.service, containerId: current, error: err });
      throw err;
    }
  };

  /**
   * A container that counted as healthy by the probe may still be "starting" for Docker (its first check is up to an
   * interval away): it passes verification when its health URL answers again now.
   */
  const answersNow = async (d: ContainerDetails): Promise<boolean> => {
    if (!answeredBy.has(d.id)) return false;
    const t = probeTargetFor(d.healthTest, d, d.healthTimeoutMs ?? 30_000);
    return t !== undefined && (await probeOnce(t, deps.signal));
  };

  /** Verification: every service running (healthy where it has a check), and none restarted since it passed its monitor window. */
  const verify = async (services: readonly string[]): Promise<string[]> => {
    const now = await deps.engine.listProject(plan.project);
    const problems: string[] = [];
    for (const name of services) {
      const cs = now.filter((c) => c.service === name);
      if (cs.length === 0) problems.push(`${name} has no container`);
      for (const c of cs) {
        const d = await deps.engine.inspect(c.id);
        if (!d.running) problems.push(`${name} is ${d.state} (exit code ${d.exitCode})`);
        else if (settled.get(name)?.includes(c.id) && d.restartCount > 0) {
          // Inspect says 0 once the new run started: the code it died with is in its die event.
          const code = events.lastDie(c.id, 0)?.exitCode ?? (d.restarting ? d.exitCode : undefined);
          problems.push(`${name} restarted ${d.restartCount} time(s) since it passed its monitor window${code === undefined ? '' : ` (last exit code ${code})`}`);
        } else if (d.hasHealthcheck && d.health !== 'healthy' && !(d.health === 'starting' && (await answersNow(d)))) problems.push(`${name} is ${d.health}`);
        if (d.oomKilled) problems.push(`${name} ran out of memory (OOMKilled)`);
      }
    }
    for (const c of now) if (!plan.services.some((x) => x.service === c.service && x.role !== 'retired')) problems.push(`${c.service} is still there`);
    return [...new Set(problems)];
  };

  const taskFor = (step: Step): ListrTask => {
    switch (step.kind) {
      case 'validate':
        return { title: step.title, task: async () => timed('validate', undefined, undefined, () => validateTarget(plan, deps)) };
      case 'preflight':
        return {
          title: step.title,
          task: async (_ctx, task) => {
            const notes = await timed('preflight', undefined, undefined, async () => preflight(plan, deps), (n) => n.join('; ') || undefined);
            task.title = notes.length ? `${step.title}: ${notes.join('; ')}` : `${step.title}: ${step.services.length ? `${compactNames(step.services)} running and healthy` : 'no rolled service runs yet'}`;
          },
        };
      case 'backup':
        return {
          title: step.title,
          task: async (_ctx, task) =>
            timed('backup', undefined, undefined, async () => {
              if (deps.existingBackup) {
                backup = deps.existingBackup;
                task.title = `Using the interrupted rollout's backup ${backup.dir} (sums verified)`;
                return backup.dir;
              }
              backup = await createBackup({ root: deps.backupRoot, current: deps.current, live: deps.live, inspect: (ids) => deps.engine.inspectRaw(ids), ...(deps.remoteFiles ? { remoteFiles: deps.remoteFiles } : {}) });
              await deps.journal?.({ step: 'backup', backup: backup.dir });
              task.title = `Backed up the current config to ${backup.dir}`;
              return backup.dir;
            }, (dir) => dir),
        };
      case 'pause':
        return { title: step.title, task: async () => timed('pause', undefined, undefined, () => deps.clock.sleep(step.ms, deps.signal)) };
      case 'update':
        if (step.updates.length === 1) {
          const u = step.updates[0] as ServiceUpdate;
          return { title: `${u.service}: ${summarizeChanges(u.changes, 3)}`, task: async (_ctx, task) => updateOne(u, task) };
        }
        return {
          title: step.title,
          task: async (_ctx, task) => {
            // Every service of the batch settles (healthy or failed) before a failure starts the rollback.
            const before = failures.length;
            await task
              .newListr(
                step.updates.map((u) => ({ title: `${u.service}: ${summarizeChanges(u.changes, 3)}`, task: async (_c: unknown, t: TaskW) => updateOne(u, t) })),
                { concurrent: true, exitOnError: false },
              )
              .run();
            const first = failures[before];
            if (first) throw first.error;
          },
        };
      case 'retire':
        return {
          title: step.title,
          task: (_ctx, task) =>
            task.newListr(
              step.services.map((r) => ({
                title: `${r.service}: stop and remove`,
                task: async (_c: unknown, t: TaskW) => timed('retire', r.service, undefined, async () => {
                  await note({ service: r.service, kind: 'retired' });
                  row(r.service).result = 'failed';
                  for (const id of r.containerIds) {
                    t.output = `stopping ${id.slice(0, 12)} (grace ${r.stopTimeoutS}s)`;
                    await deps.engine.stop(id, r.stopTimeoutS);
                    await deps.engine.remove(id);
                  }
                  await deps.journal?.({ step: 'done', service: r.service });
                  row(r.service).result = 'retired';
                  row(r.service).config = 'gone';
                  t.title = `${r.service}: retired`;
                }),
              })),
              { concurrent: true, exitOnError: true },
            ),
        };
      case 'verify':
        return {
          title: step.title,
          task: async (_ctx, task) =>
            timed('verify', undefined, undefined, async () => {
              const problems = await verify(step.services);
              if (problems.length) throw new ValidationError(`The fleet is not as planned after the rollout: ${problems.join('; ')}`);
              task.title = `Verified: ${compactNames(step.services)} running, health checks passing, no restarts`;
            }),
        };
    }
  };

  const guarded = plan.steps.map(taskFor).map((t) => ({
    ...t,
    task: (ctx: unknown, task: TaskW) => {
      if (deps.signal.aborted) throw new CancelledError('Interrupted before this step.');
      return (t.task as (c: unknown, w: TaskW) => unknown)(ctx, task);
    },
  })) as ListrTask[];
  const listr = new Listr(guarded, listrOptions(deps));
  let failure: RolloutResult['failure'];
  let interrupted = false;
  let engineLost = false;
  try {
    await listr.run();
  } catch (err) {
    if (changed.length === 0) {
      // Nothing was changed (validation, preflight, backup or an interrupt before the first service):
      // the step's own error and exit code tell the story; there is nothing to roll back.
      events.close();
      if (err instanceof ArenaError) throw err;
      if (deps.signal.aborted) throw new CancelledError('Interrupted before anything was changed.');
      throw err;
    }
    interrupted = err instanceof CancelledError || deps.signal.aborted;
    const first = failures[0];
    const cause = first?.error ?? err;
    engineLost = cause instanceof EngineUnreachableError || err instanceof EngineUnreachableError;
    const message = cause instanceof CommandFailedError && cause.firstStderrLine ? `${cause.message}: ${cause.firstStderrLine}` : cause instanceof Error ? cause.message : String(cause);
    const details = first?.containerId && !engineLost ? await describeFailure(deps.engine, first.containerId, deps.redact) : [];
    failure = { service: first?.service, message: deps.redact(message.replace(/\.$/, '')), details };
  }

  const rollbackErrors: string[] = [];
  if (failure) {
    deps.progress.write(`\n${failure.service ? `${failure.service} failed` : 'The rollout failed'}: ${failure.message}\n`);
    for (const l of failure.details) deps.progress.write(`  ${l}\n`);
    if (engineLost) {
      // Without an engine nothing can be restored: stop here and leave it resumable.
      if (failures[0]) row(failures[0].service).config = 'unknown';
    } else if (changed.length > 0) {
      if (!backup) rollbackErrors.push('no backup was written, so nothing can be restored');
      else rollbackErrors.push(...(await rollBack(changed, backup, deps, events, plan, rows, drainer)));
    }
  }
  // Whatever happened, every nginx conf the drain changed is as it was before the rollout.
  await drainer.restoreAll({ reload: !engineLost });
  events.close();
  const services = [...rows.entries()]
    .sort(([a], [b]) => naturalCompare(a, b))
    .map(([service, r]) => ({ service, change: r.change, timeToHealthyMs: r.timeToHealthyMs, result: r.result, config: r.config }));
  const outcome: RolloutResult['outcome'] = !failure ? 'succeeded' : engineLost ? 'engine-lost' : rollbackErrors.length ? 'rollback-failed' : interrupted ? 'interrupted' : 'rolled-back';
  return {
    outcome,
    verdict: verdictOf(outcome, plan, services, failure, rollbackErrors),
    services,
    backupDir: backup?.dir,
    failure,
    rollbackErrors,
    durationMs: deps.clock.now() - started,
  };
}

/**
 * `docker compose up` of one service, then a wait for each of its containers. An engine that restarted meanwhile
 * (live-restore) leaves the health checks of the containers it restored frozen: the service is recreated again, twice
 * at most, for the rollout's own updates and for the rollback's restores alike.
 */
async function recreateUntilHealthy(
  deps: ExecuteDeps,
  events: ProjectEvents,
  target: ComposeTarget,
  project: string,
  o: {
    service: string;
    waitFor: 'healthy' | 'running';
    deadlineMs: number;
    signal: AbortSignal;
    /** Wraps the recreate and each container's wait (the rollout times them as events). */
    recreate?: (run: () => Promise<void>) => Promise<void>;
    wait?: (containerId: string, run: () => Promise<number>) => Promise<number>;
    onRecreated?: () => void;
    onWaiting?: (containerId: string, status: string | undefined) => void;
    onHealthy?: (containerId: string, via: 'probe' | 'docker', url?: string) => void;
    onRetry?: () => void;
  },
): Promise<{ containers: ContainerSummary[]; startedAt: number }> {
  for (let attempt = 1; ; attempt += 1) {
    const restartsBefore = deps.engineRestarts?.() ?? 0;
    // Not cancelled by a signal: a compose killed halfway could leave the service with no container at all.
    const recreate = () => deps.compose.recreate(target, [o.service]);
    await (o.recreate ? o.recreate(recreate) : recreate());
    o.onRecreated?.();
    // Time to healthy counts from the new container's start, not from stopping the old one.
    const startedAt = deps.clock.now();
    const containers = (await deps.engine.listProject(project)).filter((c) => c.service === o.service);
    if (containers.length === 0) throw new HealthCheckError('exited', o.service, deps.clock.now() - startedAt, `${o.service} has no container after docker compose up`);
    try {
      for (const c of containers) {
        o.onWaiting?.(c.id, undefined);
        const wait = () =>
          waitForHealthy(deps.engine, events, deps.clock, {
            service: o.service,
            containerId: c.id,
            waitFor: o.waitFor,
            deadlineMs: o.deadlineMs,
            signal: o.signal,
            pollMs: deps.pollMs,
            onStatus: (st) => o.onWaiting?.(c.id, st),
            engineRestarted: () => (deps.engineRestarts?.() ?? 0) > restartsBefore,
            probe: deps.probe === true,
            onHealthy: (via, url) => o.onHealthy?.(c.id, via, url),
          });
        await (o.wait ? o.wait(c.id, wait) : wait());
      }
      return { containers, startedAt };
    } catch (err) {
      if (!(err instanceof HealthFrozenError) || attempt >= 3) throw err;
      deps.progress.write(`${o.service}: ${err.message}: recreating ${o.service} (attempt ${attempt + 1}).\n`);
      o.onRetry?.();
    }
  }
}

async function rollBack(changed: readonly Change[], backup: Backup, deps: ExecuteDeps, events: ProjectEvents, plan: RolloutPlan, rows: Map<string, RowState>, drainer: Drainer): Promise<string[]> {
  const errors: string[] = [];
  // A rollback runs to the end even when the rollout was interrupted.
  const signal = new AbortController().signal;
  const where = await restoreDirectory(backup.dir, backup.manifest);
  if (where.fromBackup) deps.progress.write(`Files the old config references changed since the backup: restoring with the backup's copies (${where.projectDirectory}).\n`);
  const restoreTarget: ComposeTarget = {
    project: plan.project,
    files: backup.manifest.composeFiles.map((f) => path.join(backup.dir, f.stored)),
    projectDirectory: where.projectDirectory,
  };
  const tasks: ListrTask[] = [...changed].reverse().map((c) => ({
    title: `${c.service}: ${c.kind === 'created' ? 'remove (new in the target)' : 'restore from the backup'}`,
    task: async (_ctx: unknown, task: TaskW) => timedStep(deps.events, () => deps.clock.now(), { step: 'rollback', service: c.service }, async () => {
      const r = rows.get(c.service) as RowState;
      try {
        if (c.kind === 'created') {
          for (const ct of (await deps.engine.listProject(plan.project)).filter((x) => x.service === c.service)) {
            await deps.engine.stop(ct.id, Math.ceil((deps.target.services[c.service]?.stopGracePeriodMs ?? 10_000) / 1000));
            await deps.engine.remove(ct.id);
          }
          r.result = 'removed (rolled back)';
          r.config = 'gone';
          task.title = `${c.service}: removed`;
          return;
        }
        const svc = deps.current.services[c.service];
        await drainer.drain(c.service);
        const { startedAt: t0 } = await recreateUntilHealthy(deps, events, restoreTarget, plan.project, {
          service: c.service,
          waitFor: svc?.healthcheck ? 'healthy' : 'running',
          deadlineMs: (svc && healthDeadlineMs(svc)) ?? 60_000,
          signal,
        });
        await drainer.undrain(c.service);
        r.result = 'rolled back';
        r.config = 'old';
        task.title = `${c.service}: restored, healthy after ${formatElapsed(deps.clock.now() - t0)}`;
      } catch (err) {
        r.result = 'rollback failed';
        r.config = await configNow(deps.engine, plan, restoreTarget, c.service);
        const message = err instanceof CommandFailedError && err.firstStderrLine ? err.firstStderrLine : err instanceof Error ? err.message : String(err);
        errors.push(`${c.service}: ${deps.redact(message.replace(/\.$/, ''))}`);
        throw err;
      }
    }),
    exitOnError: false,
  }));
  deps.progress.write('\nRolling back, newest change first:\n');
  try {
    await new Listr(tasks, { ...listrOptions(deps), exitOnError: false }).run();
  } catch {
    // Each task recorded its own error.
  }
  return errors;
}

/** Which config a service's containers run now, from compose's config-files label: the target's, the backup's, or neither. */
async function configNow(engine: EngineClient, plan: RolloutPlan, restore: ComposeTarget, service: string): Promise<ConfigState> {
  try {
    const cs = (await engine.listProject(plan.project)).filter((c) => c.service === service);
    if (cs.length === 0) return 'gone';
    const same = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((f, i) => path.resolve(f) === path.resolve(b[i] as string));
    if (cs.every((c) => same(c.configFiles, plan.targetFiles))) return 'new';
    if (cs.every((c) => same(c.configFiles, restore.files) || same(c.configFiles, plan.currentFiles))) return 'old';
    return 'unknown';
  } catch {
    return 'unknown';
  }
}

/**
 * The rich task list, on stderr. listr2 falls back to its line renderer, written to stdout, whenever process.stdout is
 * not a terminal: with `> report.ndjson` from a terminal, progress would land in the report and the terminal get none.
 * The CLI chose 'default' because stderr is a terminal, so the renderer is told not to look at stdout.
 */
class StderrTaskList extends DefaultRenderer {
  static override nonTTY = true;
}

function listrOptions(deps: ExecuteDeps) {
  // Progress goes to stderr whatever the renderer; stdout stays for the summary.
  const processOutput = new ProcessOutput(deps.progress, deps.progress, { dump: [], leaveEmptyLine: false });
  const logger = new ListrLogger({ useIcons: true, processOutput });
  return {
    exitOnError: true,
    renderer: deps.renderer === 'default' ? StderrTaskList : deps.renderer,
    rendererOptions:
      deps.renderer === 'default'
        ? { collapseSubtasks: false, showErrorMessage: true, formatOutput: 'wrap' as const, logger }
        : deps.renderer === 'simple'
          ? // No timestamp of listr2's own: it would come after the icon. The CLI gives a stream that starts every line with one.
            { logger }
          : {},
    collectErrors: false as const,
    registerSignalListeners: false,
  };
}

/** The one-line verdict: what happened and which services run which config. */
export function verdictOf(
  outcome: RolloutResult['outcome'],
  plan: RolloutPlan,
  services: readonly ServiceResult[],
  failure: RolloutResult['failure'],
  rollbackErrors: readonly string[],
): string {
  const by = (pred: (s: ServiceResult) => boolean) => services.filter(pred).map((s) => s.service);
  if (outcome === 'succeeded') {
    const updated = by((s) => s.result === 'updated' || s.result === 'created' || s.result === 'updated earlier');
    const retired = by((s) => s.result === 'retired' || s.result === 'retired earlier');
    const kept = by((s) => s.result.startsWith('kept'));
    if (updated.length === 0 && retired.length === 0) return `Nothing to do: every service of ${plan.project} already runs the target config${kept.length ? ` (${compactNames(kept)} left alone, see the warnings)` : ''}.`;
    return `Rolled out ${plan.project}: ${updated.length ? `${compactNames(updated)} on the new config` : 'no service recreated'}${retired.length ? `, ${compactNames(retired)} retired` : ''}${kept.length ? `, ${compactNames(kept)} left alone (see the warnings)` : ''}.`;
  }
  const why = failure ? `${failure.service ? `${failure.service}: ` : ''}${failure.message}` : 'unknown failure';
  if (outcome === 'engine-lost') {
    const newOnes = by((s) => s.config === 'new' && s.result !== 'unchanged');
    const unknown = by((s) => s.config === 'unknown');
    const parts = [newOnes.length ? `${compactNames(newOnes)} on the new config` : '', unknown.length ? `${compactNames(unknown)} in an unknown state` : ''].filter(Boolean);
    return `Stopped: ${why.replace(/\.$/, '')}. ${parts.length ? `${parts.join(', ')}, the rest` : 'Every service'} on the old config; nothing was rolled back. When the engine answers again, \`arena-deploy rollout --resume\` finishes the rollout and \`arena-deploy rollback\` restores the backup.`;
  }
  if (outcome === 'rollback-failed') {
    const changedRows = services.filter((s) => s.result !== 'unchanged' && !s.result.startsWith('kept'));
    const newOnes = changedRows.filter((s) => s.config === 'new').map((s) => s.service);
    const unknown = by((s) => s.config === 'unknown');
    const gone = changedRows.filter((s) => s.config === 'gone' && s.result === 'rollback failed').map((s) => s.service);
    const parts = [newOnes.length ? `${compactNames(newOnes)} on the NEW config` : '', unknown.length ? `${compactNames(unknown)} in an unknown state` : '', gone.length ? `${compactNames(gone)} without a container` : ''].filter(Boolean);
    return `Rollback failed after ${why.replace(/\.$/, '')}. ${parts.join(', ')}${parts.length ? '; ' : ''}every other service on the old config. A person must act: ${rollbackErrors.join('; ')}.`;
  }
  const restored = by((s) => s.result === 'rolled back');
  const removed = by((s) => s.result === 'removed (rolled back)');
  const head = outcome === 'interrupted' ? 'Interrupted' : 'Rolled back';
  const undone = [restored.length ? `${compactNames(restored)} restored from the backup` : '', removed.length ? `${compactNames(removed)} (new) removed` : ''].filter(Boolean).join(', ');
  return `${head}: ${why.replace(/\.$/, '')}. ${undone ? `${undone}; ` : ''}every service of ${plan.project} is on the old config.`;
}
