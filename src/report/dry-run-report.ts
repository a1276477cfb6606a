/** What a reviewer needs to judge a rollout from its dry run alone: one data model, rendered as markdown or JSON. Pure. */
import path from 'node:path';
import type { Analysis, Finding, Host } from '../analysis/analyze-plan.js';
import { diffServices, type FieldChange } from '../plan/diff-services.js';
import type { Plan, ServicePlan } from '../plan/types.js';
import type { RolloutPlan, ServiceDisposition, Step } from '../rollout/plan-rollout.js';
import { compactNames } from '../util/names.js';
import { REDACTED, redactText } from '../util/redact.js';
import { groupFindings, type FindingGroup } from './render-analysis.js';
import { describeStep } from './render-rollout.js';

/** Version of the dry-run report (the JSON object and the markdown follow it). */
export const DRY_RUN_REPORT_VERSION = 1;

/** Something the reviewer should read first: an analysis finding, or a warning of the rollout itself. */
export interface Problem {
  readonly severity: Finding['severity'];
  /** analysis: a `validate` rule; rollout: what the planner and the checks of the fleet say. */
  readonly source: 'analysis' | 'rollout';
  readonly rule: string | undefined;
  readonly services: readonly string[];
  readonly message: string;
}

/** Services that the rollout treats the same way with the same changes, shown once (web-1…web-6). */
export interface ServiceGroup {
  readonly services: readonly string[];
  readonly role: ServiceDisposition['role'];
  readonly action: ServiceDisposition['action'];
  readonly changes: readonly FieldChange[];
  readonly note: string | undefined;
}

/** One plan's side of the analysis. */
export interface AnalysisSide {
  readonly files: readonly string[];
  readonly analysis: Analysis | undefined;
  /** Why there is no analysis (the current plan's nginx config unreadable…). */
  readonly unavailable: string | undefined;
}

/** The whole dry run, as data. */
export interface DryRunReport {
  readonly version: typeof DRY_RUN_REPORT_VERSION;
  readonly project: string;
  /** online: the live fleet was read from the engine; offline: assumed from --current, no engine asked. */
  readonly mode: 'online' | 'offline';
  /** The engine asked (online), else undefined. */
  readonly engine: string | undefined;
  /** Who decided which services change: compose's own dry run, or the field-by-field diff of the files. */
  readonly changedBy: 'compose' | 'files';
  readonly currentFiles: readonly string[];
  readonly targetFiles: readonly string[];
  readonly headline: string;
  readonly counts: {
    readonly rolled: number;
    readonly added: number;
    readonly recreated: number;
    readonly retired: number;
    readonly statefulDiffers: number;
    readonly keptNotInTarget: number;
    readonly unchanged: number;
    readonly errors: number;
    readonly warnings: number;
    readonly notes: number;
  };
  /** How many rolled services are updated at once. */
  readonly parallelism: number;
  /** Errors first, then warnings, then notes. */
  readonly problems: readonly Problem[];
  readonly services: readonly ServiceDisposition[];
  readonly groups: readonly ServiceGroup[];
  readonly steps: ReadonlyArray<{ readonly n: number; readonly kind: Step['kind']; readonly title: string; readonly lines: readonly string[] }>;
  readonly host: Host | undefined;
  readonly hostSkipped: string | undefined;
  /** What this dry run could not check (offline: the images on the engine, the fleet's health). */
  readonly unchecked: readonly string[];
  readonly target: AnalysisSide;
  readonly current: AnalysisSide;
  /** Findings of the current plan that the target no longer has, and findings the target brings. */
  readonly fixed: readonly FindingGroup[];
  readonly introduced: readonly FindingGroup[];
}

/** Everything the report is built from. */
export interface DryRunInput {
  readonly plan: RolloutPlan;
  readonly target: Plan;
  readonly current: Plan;
  readonly mode: 'online' | 'offline';
  readonly engine?: string | undefined;
  /** Whether compose's own dry run was asked and answered. */
  readonly composeAnswered: boolean;
  readonly host: Host | undefined;
  /** Why host rules were skipped, when the analysis's own reason does not fit (offline). */
  readonly hostSkipped?: string | undefined;
  readonly unchecked?: readonly string[] | undefined;
  readonly targetAnalysis: Analysis;
  readonly currentAnalysis: Analysis | string;
  /** Warnings of the rollout beyond the planner's (stale files, missing rollback images, --force notes). */
  readonly warnings: readonly string[];
  /** Paths are shown relative to this folder when they are inside it. */
  readonly cwd: string;
  /** Per service, changes the service diff cannot see: what its nginx config says (upstream servers, timeouts). */
  readonly configChanges?: ReadonlyMap<string, readonly FieldChange[]> | undefined;
}

const ORDER: Record<Finding['severity'], number> = { error: 0, warning: 1, info: 2 };

/** Builds the report; no I/O. */
export function buildDryRunReport(input: DryRunInput): DryRunReport {
  const plan = withConfigChanges(input.plan, input.configChanges);
  const show = (f: string) => {
    const rel = path.relative(input.cwd, f);
    return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : f;
  };
  const problems: Problem[] = [
    ...groupFindings(input.targetAnalysis.findings).map((g) => ({ severity: g.severity, source: 'analysis' as const, rule: g.rule, services: g.services, message: g.message })),
    ...[...plan.warnings, ...input.warnings].map((w) => ({ severity: 'warning' as const, source: 'rollout' as const, rule: undefined, services: [], message: w })),
  ].sort((a, b) => ORDER[a.severity] - ORDER[b.severity]);

  const by = (role: ServiceDisposition['role']) => plan.services.filter((s) => s.role === role).map((s) => s.service);
  const rolled = by('rolled');
  const counts = {
    rolled: rolled.length,
    added: by('added').length,
    recreated: by('other').length,
    retired: by('retired').length,
    statefulDiffers: by('stateful').length,
    keptNotInTarget: by('kept').length,
    unchanged: by('unchanged').length,
    errors: problems.filter((p) => p.severity === 'error').length,
    warnings: problems.filter((p) => p.severity === 'warning').length,
    notes: problems.filter((p) => p.severity === 'info').length,
  };
  const firstRolled = plan.steps.find((s): s is Extract<Step, { kind: 'update' }> => s.kind === 'update' && s.role === 'rolled');
  const parallelism = firstRolled?.updates.length ?? 1;

  const steps: DryRunReport['steps'][number][] = [];
  let n = 0;
  for (const step of plan.steps) {
    const lines = describeStep(step);
    steps.push({ n: n + 1, kind: step.kind, title: step.title, lines });
    n += lines.length;
  }

  const current = typeof input.currentAnalysis === 'string' ? undefined : input.currentAnalysis;
  const targetGroups = groupFindings(input.targetAnalysis.findings);
  const currentGroups = current ? groupFindings(current.findings) : [];
  const key = (g: FindingGroup) => `${g.rule}|${g.severity}`;
  const fixed = currentGroups.filter((g) => !targetGroups.some((t) => key(t) === key(g)));
  const introduced = current ? targetGroups.filter((g) => !currentGroups.some((c) => key(c) === key(g))) : [];

  return {
    version: DRY_RUN_REPORT_VERSION,
    project: plan.project,
    mode: input.mode,
    engine: input.engine,
    changedBy: input.composeAnswered ? 'compose' : 'files',
    currentFiles: plan.currentFiles.map(show),
    targetFiles: plan.targetFiles.map(show),
    headline: headline(plan, counts, parallelism),
    counts,
    parallelism,
    problems,
    services: plan.services,
    groups: groupServices(plan.services.map((d) => (d.role === 'added' && d.changes.every((c) => c.field === 'service') ? { ...d, changes: describeNew(input.target.services[d.service]) } : d))),
    steps,
    host: input.host,
    hostSkipped: input.host ? undefined : (input.hostSkipped ?? input.targetAnalysis.hostSkipped),
    unchecked: input.unchecked ?? [],
    target: { files: plan.targetFiles.map(show), analysis: input.targetAnalysis, unavailable: undefined },
    current: { files: plan.currentFiles.map(show), analysis: current, unavailable: typeof input.currentAnalysis === 'string' ? input.currentAnalysis : undefined },
    fixed,
    introduced,
  };
}

/** The plan with each changed service's config-file changes added to its own (unchanged services keep none). */
function withConfigChanges(plan: RolloutPlan, extra: DryRunInput['configChanges']): RolloutPlan {
  if (!extra || extra.size === 0) return plan;
  return {
    ...plan,
    services: plan.services.map((d) => {
      const more = extra.get(d.service);
      return more?.length && d.role !== 'unchanged' && d.role !== 'retired' && d.role !== 'kept' ? { ...d, changes: [...d.changes, ...more] } : d;
    }),
  };
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** `6 web services updated one at a time (web-1…web-6), 4 retired (web-7…web-10), nginx recreated, redis unchanged; 0 errors, 1 warning`. */
function headline(plan: RolloutPlan, c: DryRunReport['counts'], parallelism: number): string {
  const names = (role: ServiceDisposition['role']) => compactNames(plan.services.filter((s) => s.role === role).map((s) => s.service));
  const rolledNames = plan.services.filter((s) => s.role === 'rolled').map((s) => s.service);
  const kind = rolledNames.every((s) => s.startsWith('web-')) ? 'web service' : 'rolled service';
  const parts: string[] = [];
  if (c.rolled) parts.push(`${plural(c.rolled, kind)} updated ${parallelism === 1 || c.rolled === 1 ? 'one at a time' : `${parallelism} at a time`} (${names('rolled')})`);
  if (c.added) parts.push(`${c.added} added (${names('added')})`);
  if (c.retired) parts.push(`${c.retired} retired (${names('retired')})`);
  if (c.recreated) parts.push(`${names('other')} recreated`);
  if (c.statefulDiffers) parts.push(`${names('stateful')} differ${c.statefulDiffers === 1 ? 's' : ''} but left alone (stateful)`);
  if (c.keptNotInTarget) parts.push(`${names('kept')} not in the target but left running`);
  if (c.unchanged) parts.push(`${names('unchanged')} unchanged`);
  if (!c.rolled && !c.added && !c.retired && !c.recreated) parts.unshift('nothing to do');
  const tally = `${plural(c.errors, 'error')}, ${plural(c.warnings, 'warning')}${c.notes ? `, ${plural(c.notes, 'note')}` : ''}`;
  return `${parts.join(', ')}; ${tally}`;
}

/** Groups services with the same role, action and changes, in the order of the plan (web-1 first). */
function groupServices(services: readonly ServiceDisposition[]): ServiceGroup[] {
  const groups = new Map<string, { services: string[]; d: ServiceDisposition }>();
  for (const d of services) {
    const k = JSON.stringify([d.role, d.action, d.changes, d.note === undefined ? '' : d.note.replace(d.service, '*')]);
    const g = groups.get(k);
    if (g) g.services.push(d.service);
    else groups.set(k, { services: [d.service], d });
  }
  return [...groups.values()].map(({ services: s, d }) => ({ services: s, role: d.role, action: d.action, changes: d.changes, note: s.length === 1 ? d.note : d.note?.replace(d.service, 'SERVICE') }));
}

/** What a new service will be, as changes from nothing: its image, command, limits, health check, ports, environment… */
function describeNew(s: ServicePlan | undefined): FieldChange[] {
  if (!s) return [{ field: 'service', from: 'absent', to: 'added' }];
  const none: ServicePlan = {
    ...s,
    image: undefined,
    hasBuild: false,
    command: undefined,
    entrypoint: undefined,
    environment: {},
    envFiles: [],
    ports: [],
    healthcheck: undefined,
    limits: { cpus: undefined, memoryBytes: undefined },
    reservations: { cpus: undefined, memoryBytes: undefined },
    stopGracePeriodMs: undefined,
    restart: undefined,
    bindMounts: [],
    dependsOn: [],
    raw: {},
  };
  return [{ field: 'service', from: 'absent', to: 'added' }, ...diffServices(none, s).map((c) => ({ ...c, from: '—' }))];
}

/**
 * The report with every secret value replaced, in every string it holds, before it is rendered: escaping for markdown
 * or JSON afterwards could otherwise turn a secret into a form the final redaction no longer recognizes.
 */
export function redactReport<T>(value: T, secrets: Iterable<string>): T {
  const list = [...secrets];
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') return redactText(v, list);
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    return v;
  };
  return walk(value) as T;
}

/** Whether a change is of a masked value (a secret-looking key, or a value from an env file). */
export function isMasked(c: FieldChange): boolean {
  return c.from.startsWith(REDACTED) || c.to.startsWith(REDACTED);
}
