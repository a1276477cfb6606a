/** The rollout planner: (target plan, current plan, live fleet, policy) → ordered steps. Pure; the dry run prints its output. */
import { diffServices, type FieldChange } from '../plan/diff-services.js';
import type { Plan, ServicePlan } from '../plan/types.js';
import type { ContainerSummary } from '../engine/engine-client.js';
import { globToRegExp, matchesAny, splitGlobs } from '../util/glob.js';
import { ValidationError } from '../errors.js';

/** Version of the saved step-list format; a run from a saved list refuses others. */
export const ROLLOUT_PLAN_VERSION = 1;

/** What the operator chose on the command line (undefined: take the plan's value or the default). */
export interface RolloutPolicy {
  /** Glob(s) of the services rolled one batch at a time; default x-arena-deploy.services or `web-*`. */
  readonly services?: string | undefined;
  /** Stateful services to recreate anyway when they differ. */
  readonly include?: readonly string[];
  readonly parallelism?: number | undefined;
  readonly delayMs?: number | undefined;
  readonly monitorMs?: number | undefined;
  readonly healthTimeoutMs?: number | undefined;
}

/** How one service is brought to the target. */
export interface ServiceUpdate {
  readonly service: string;
  /** recreate: it runs now and is replaced; create: it is new (or has no container). */
  readonly action: 'recreate' | 'create';
  /** Docker health check from the plan: wait for healthy; none: wait for running. */
  readonly waitFor: 'healthy' | 'running';
  /** How long to wait for healthy before it counts as failed. */
  readonly healthDeadlineMs: number;
  /** After healthy: a die, oom or restart within this window is a failure. */
  readonly monitorMs: number;
  readonly changes: readonly FieldChange[];
}

/** A service the target no longer has: its containers are stopped (with its grace period) and removed. */
export interface RetireSpec {
  readonly service: string;
  readonly containerIds: readonly string[];
  readonly stopTimeoutS: number;
}

/** One step the executor performs, in order. */
export type Step =
  | { readonly kind: 'validate'; readonly title: string }
  | { readonly kind: 'preflight'; readonly title: string; readonly services: readonly string[] }
  | { readonly kind: 'backup'; readonly title: string }
  | { readonly kind: 'update'; readonly title: string; readonly batch: number; readonly role: 'rolled' | 'other'; readonly updates: readonly ServiceUpdate[] }
  | { readonly kind: 'pause'; readonly title: string; readonly ms: number }
  | { readonly kind: 'retire'; readonly title: string; readonly services: readonly RetireSpec[] }
  | { readonly kind: 'verify'; readonly title: string; readonly services: readonly string[] };

/** Per service, what the rollout does with it and why. */
export interface ServiceDisposition {
  readonly service: string;
  readonly role: 'rolled' | 'other' | 'stateful' | 'kept' | 'retired' | 'added' | 'unchanged';
  readonly action: 'recreate' | 'create' | 'retire' | 'keep';
  readonly changes: readonly FieldChange[];
  readonly note?: string;
}

/** The whole plan of a rollout: data, printed by --dry-run and performed by the executor. */
export interface RolloutPlan {
  readonly version: typeof ROLLOUT_PLAN_VERSION;
  readonly project: string;
  readonly targetFiles: readonly string[];
  readonly targetProjectDirectory: string;
  readonly currentFiles: readonly string[];
  readonly currentProjectDirectory: string;
  readonly steps: readonly Step[];
  readonly services: readonly ServiceDisposition[];
  readonly warnings: readonly string[];
}

/** Everything the planner looks at. */
export interface PlanRolloutInput {
  readonly target: Plan;
  readonly current: Plan;
  readonly live: readonly ContainerSummary[];
  /** Per service, what compose's own dry run would do with the target files: the authority on "changed" when known. */
  readonly composeView?: ReadonlyMap<string, 'running' | 'recreate' | 'create'> | undefined;
  readonly policy: RolloutPolicy;
  /** Resuming: services that were in flight when the earlier run stopped, recreated whatever they look like. */
  readonly inFlight?: readonly string[] | undefined;
}

const STATEFUL_IMAGE = /(^|\/)(redis|valkey|postgres|postgis|mysql|mariadb|mongo|memcached|rabbitmq|elasticsearch|zookeeper|kafka)([:@]|$)/;

/** Compares names the way people number services: web-2 before web-10. */
export function naturalCompare(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

/** The health deadline of a service: start_period + retries × (interval + timeout), as the README explains. */
export function healthDeadlineMs(service: ServicePlan): number | undefined {
  const h = service.healthcheck;
  if (!h) return undefined;
  return h.startPeriodMs + Math.max(h.retries, 1) * (h.intervalMs + h.timeoutMs);
}

/** Whether the tool treats a service as stateful (not recreated unless included). */
export function isStateful(service: ServicePlan, plan: Plan): boolean {
  if (plan.extension.stateful) return plan.extension.stateful.includes(service.name);
  return STATEFUL_IMAGE.test(service.image ?? '');
}

/** Orders updates so a service comes after those it depends_on (nginx after the web services it routes to); ties keep their order. */
export function dependencyOrder(updates: readonly ServiceUpdate[], plan: Plan): ServiceUpdate[] {
  const names = new Set(updates.map((u) => u.service));
  const out: ServiceUpdate[] = [];
  const placed = new Set<string>();
  const visiting = new Set<string>();
  const visit = (u: ServiceUpdate) => {
    if (placed.has(u.service) || visiting.has(u.service)) return;
    visiting.add(u.service);
    for (const dep of plan.services[u.service]?.dependsOn ?? []) {
      const d = updates.find((x) => x.service === dep);
      if (d && names.has(dep)) visit(d);
    }
    visiting.delete(u.service);
    placed.add(u.service);
    out.push(u);
  };
  for (const u of updates) visit(u);
  return out;
}

/** Plans a rollout; throws ValidationError when the policy names services the target lacks. */
export function planRollout(input: PlanRolloutInput): RolloutPlan {
  const { target, current, live, policy } = input;
  const warnings: string[] = [];
  const glob = policy.services ?? target.extension.services ?? 'web-*';
  const origin = policy.services !== undefined ? '--services' : target.extension.services !== undefined ? 'x-arena-deploy.services' : 'The default --services';
  const targetNames = Object.keys(target.services).sort(naturalCompare);
  for (const g of splitGlobs(glob)) {
    const literal = !/[*?{]/.test(g);
    const re = globToRegExp(g);
    if (literal && !target.services[g]) throw new ValidationError(`${origin} names "${g}", which the target plan ${target.files.join(', ')} does not define (it has ${targetNames.join(', ')}).`);
    if (!literal && !targetNames.some((n) => re.test(n))) throw new ValidationError(`${origin} "${g}" matches no service of the target plan (it has ${targetNames.join(', ')})${origin === '--services' ? '' : ': name the services to roll one at a time with --services or x-arena-deploy.services'}.`);
  }
  const liveBy = new Map<string, ContainerSummary[]>();
  for (const c of live) liveBy.set(c.service, [...(liveBy.get(c.service) ?? []), c]);
  const liveNames = [...liveBy.keys()].sort(naturalCompare);
  for (const name of policy.include ?? []) {
    if (!target.services[name] && !liveBy.has(name)) throw new ValidationError(`--include names "${name}", which neither the target plan nor the running fleet has.`);
  }

  const dispositions: ServiceDisposition[] = [];
  const rolled: ServiceUpdate[] = [];
  const others: ServiceUpdate[] = [];
  for (const name of targetNames) {
    const t = target.services[name] as ServicePlan;
    const containers = liveBy.get(name) ?? [];
    const cur = current.services[name];
    const changes = diffServices(cur, t);
    const running = containers.some((c) => c.state === 'running');
    const composeSays = input.composeView?.get(name);
    const again = input.inFlight?.includes(name) ?? false;
    const differs = again || containers.length === 0 || !running ? true : composeSays !== undefined ? composeSays !== 'running' : changes.length > 0;
    const isRolled = matchesAny(name, glob);
    if (!differs) {
      dispositions.push({ service: name, role: 'unchanged', action: 'keep', changes: [] });
      continue;
    }
    const shownChanges = changes.length > 0 ? changes : again ? [{ field: 'in flight when the earlier run stopped', from: 'unknown', to: 'recreated' }] : [{ field: 'compose config', from: 'as deployed', to: 'changed' }];
    if (!isRolled && isStateful(t, target) && containers.length > 0 && !(policy.include ?? []).includes(name)) {
      dispositions.push({ service: name, role: 'stateful', action: 'keep', changes: shownChanges, note: `stateful: not recreated; pass --include ${name} to recreate it` });
      warnings.push(`${name} differs from the target (${shownChanges.map((c) => c.field).join(', ')}) but is stateful and is left alone; pass --include ${name} to recreate it.`);
      continue;
    }
    const deadline = policy.healthTimeoutMs ?? healthDeadlineMs(t);
    const update: ServiceUpdate = {
      service: name,
      action: containers.length === 0 ? 'create' : 'recreate',
      waitFor: t.healthcheck ? 'healthy' : 'running',
      healthDeadlineMs: deadline ?? 60_000,
      monitorMs: policy.monitorMs ?? t.updateConfig.monitorMs,
      changes: shownChanges,
    };
    if (!t.healthcheck) warnings.push(`${name} has no health check${t.healthcheck === null ? ' (disabled)' : ' in the plan'}: the rollout can only wait for it to be running through the monitor window.`);
    (isRolled ? rolled : others).push(update);
    dispositions.push({ service: name, role: containers.length === 0 ? 'added' : isRolled ? 'rolled' : 'other', action: update.action, changes: shownChanges });
  }
  // Only rolled services (web-*) the target drops are retired on their own; removing anything else
  // (nginx, redis…) must be asked for with --include, since a plan missing them is more often a mistake.
  const absent = liveNames.filter((n) => !target.services[n]);
  const retired = absent.filter((n) => matchesAny(n, glob) || (policy.include ?? []).includes(n));
  for (const name of retired) dispositions.push({ service: name, role: 'retired', action: 'retire', changes: [{ field: 'service', from: 'running', to: 'removed' }] });
  for (const name of absent.filter((n) => !retired.includes(n))) {
    dispositions.push({ service: name, role: 'kept', action: 'keep', changes: [{ field: 'service', from: 'running', to: 'not in the target' }], note: `not in the target: left running; pass --include ${name} to remove it` });
    warnings.push(`${name} runs but is not in the target plan: it is left running (it is not one of the rolled services); pass --include ${name} to stop and remove it.`);
  }

  const steps: Step[] = [
    { kind: 'validate', title: 'Validate the target plan' },
    { kind: 'preflight', title: 'Check the current fleet', services: liveNames.filter((n) => matchesAny(n, glob)) },
    { kind: 'backup', title: 'Back up the current config' },
  ];
  const rolledServices = rolled.map((u) => target.services[u.service] as ServicePlan);
  const parallelism = policy.parallelism ?? Math.min(...rolledServices.map((s) => s.updateConfig.parallelism || rolled.length), rolled.length || 1);
  const delayMs = policy.delayMs ?? Math.max(0, ...rolledServices.map((s) => s.updateConfig.delayMs));
  let batch = 0;
  for (let i = 0; i < rolled.length; i += Math.max(parallelism, 1)) {
    const updates = rolled.slice(i, i + Math.max(parallelism, 1));
    batch += 1;
    if (batch > 1 && delayMs > 0) steps.push({ kind: 'pause', title: `Wait ${delayMs} ms (update_config.delay)`, ms: delayMs });
    steps.push({ kind: 'update', title: `Update ${updates.map((u) => u.service).join(', ')}`, batch, role: 'rolled', updates });
  }
  for (const u of dependencyOrder(others, target)) {
    batch += 1;
    steps.push({ kind: 'update', title: `Update ${u.service}`, batch, role: 'other', updates: [u] });
  }
  if (retired.length > 0) {
    // Only after nginx routes to the new set; all at once, since nothing routes to them any more.
    steps.push({
      kind: 'retire',
      title: `Retire ${retired.join(', ')}`,
      services: retired.map((name) => ({
        service: name,
        containerIds: (liveBy.get(name) ?? []).map((c) => c.id),
        stopTimeoutS: Math.ceil((current.services[name]?.stopGracePeriodMs ?? 10_000) / 1000),
      })),
    });
  }
  steps.push({ kind: 'verify', title: 'Verify the fleet', services: targetNames });

  return {
    version: ROLLOUT_PLAN_VERSION,
    project: target.project,
    targetFiles: target.files,
    targetProjectDirectory: target.projectDirectory,
    currentFiles: current.files,
    currentProjectDirectory: current.projectDirectory,
    steps,
    services: dispositions.sort((a, b) => naturalCompare(a.service, b.service)),
    warnings,
  };
}

/** Whether the rollout changes anything at all. */
export function hasWork(plan: RolloutPlan): boolean {
  return plan.steps.some((s) => s.kind === 'update' || s.kind === 'retire');
}
