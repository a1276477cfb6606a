/** `rollout --dry-run` for reviewers: `--output markdown|json`, and `--offline` (no engine at all, from `--current`). */
import path from 'node:path';
import { UsageError, ValidationError } from '../../errors.js';
import { loadPlan } from '../../plan/load-plan.js';
import type { Plan } from '../../plan/types.js';
import { analyzeWithConfigs, readNginxConfigs, resolveHost, type HostFlags } from '../../analysis/plan-analysis.js';
import { diffNginx } from '../../plan/diff-nginx.js';
import type { FieldChange } from '../../plan/diff-services.js';
import type { NginxConfig } from '../../plan/nginx.js';
import type { Analysis, Host } from '../../analysis/analyze-plan.js';
import { composeTargetOf } from '../../engine/compose-commands.js';
import { planRollout, type RolloutPlan, type RolloutPolicy } from '../../rollout/plan-rollout.js';
import { assumedFleet } from '../../rollout/offline-fleet.js';
import { buildDryRunReport, redactReport, type DryRunInput } from '../../report/dry-run-report.js';
import { renderDryRunMarkdown } from '../../report/render-dry-run-markdown.js';
import { dryRunJson } from '../../report/dry-run-json.js';
import { renderDryRun } from '../../report/render-rollout.js';
import { groupFindings } from '../../report/render-analysis.js';
import { credentialsIn, redactText } from '../../util/redact.js';
import { compactNames } from '../../util/names.js';
import type { Context } from '../context.js';

/** What `rollout --output` prints. */
export type OutputFormat = 'text' | 'json' | 'markdown';

/** The flags `--output`, `--offline` and `--host-*` add to rollout. */
export interface DryRunFlags {
  readonly dryRun?: boolean | undefined;
  readonly output?: OutputFormat | undefined;
  readonly offline?: boolean | undefined;
  readonly current?: readonly string[] | undefined;
  readonly resume?: boolean | undefined;
  readonly host?: HostFlags | undefined;
}

/** Refuses the combinations that mean nothing, with one sentence each (exit 2). */
export function checkDryRunFlags(o: DryRunFlags): void {
  if (o.output === 'markdown' && !o.dryRun) throw new UsageError('--output markdown is the dry run a reviewer reads: use it with --dry-run.');
  if (o.offline && !o.dryRun) throw new UsageError('--offline works only with --dry-run: a real rollout needs the engine.');
  if (o.offline && !o.current?.length) throw new UsageError('--offline needs --current FILE: without the engine, the plan the fleet runs now must be given.');
  if (o.offline && o.resume) throw new UsageError('--offline cannot --resume: resuming reads the fleet from the engine.');
  if ((o.host?.cpus !== undefined || o.host?.memoryBytes !== undefined) && !o.offline) {
    throw new UsageError('--host-cpus and --host-memory go with --offline: online, the analysis uses the engine\'s own host.');
  }
}

/** Adds what the plans mark sensitive, and the passwords inside URLs, to the values nothing may print. */
export function registerPlanSecrets(secrets: Set<string>, ...plans: Plan[]): void {
  for (const p of plans) {
    for (const s of Object.values(p.services)) {
      for (const v of Object.values(s.environment)) {
        if (!v.sensitive || !v.value) continue;
        secrets.add(v.value);
        for (const c of credentialsIn(v.value)) secrets.add(c);
      }
    }
  }
}

/** The pieces of a dry run the command has gathered, online or offline: the report's input but for what writeDryRun adds. */
export type DryRunOutput = Omit<DryRunInput, 'currentAnalysis' | 'cwd' | 'configChanges'>;

/** Prints the dry run as markdown or JSON on stdout (text stays with renderDryRun); secrets masked before rendering. */
export function writeDryRun(ctx: Context, format: 'markdown' | 'json', d: DryRunOutput): void {
  registerPlanSecrets(ctx.secrets, d.target, d.current);
  let currentAnalysis: Analysis | string;
  try {
    currentAnalysis = analyzeWithConfigs(d.current, d.host);
  } catch (err) {
    currentAnalysis = err instanceof Error ? err.message : String(err);
  }
  const input: DryRunInput = { ...d, currentAnalysis, cwd: ctx.cwd, configChanges: nginxChanges(d.current, d.target) };
  const report = redactReport(buildDryRunReport(input), ctx.secrets);
  const text = format === 'markdown' ? renderDryRunMarkdown(report) : `${JSON.stringify(dryRunJson(report))}\n`;
  ctx.io.stdout.write(redactText(text, ctx.secrets));
}

/** Per service, what its nginx config changes; a config that cannot be read adds nothing here (the analysis says why). */
function nginxChanges(current: Plan, target: Plan): Map<string, FieldChange[]> {
  const read = (p: Plan) => {
    try {
      return readNginxConfigs(p);
    } catch {
      return new Map<string, NginxConfig>();
    }
  };
  const a = read(current);
  const b = read(target);
  const out = new Map<string, FieldChange[]>();
  for (const service of new Set([...a.keys(), ...b.keys()])) {
    if (!target.services[service]) continue;
    const changes = diffNginx(a.get(service), b.get(service));
    if (changes.length) out.set(service, changes);
  }
  return out;
}

/** Flags of the offline dry run (the rest of rollout's options are the same). */
export interface OfflineDryRunOptions {
  readonly current: readonly string[];
  readonly project?: string | undefined;
  readonly output: OutputFormat;
  readonly policy: RolloutPolicy;
  readonly host: HostFlags;
  readonly force?: boolean | undefined;
}

/**
 * The dry run with no engine: the current plan from --current, every service assumed running and healthy; what
 * changed is the field-by-field diff of the files. Calls only `docker compose config --quiet` (which needs no engine),
 * and only when compose is installed.
 */
export async function offlineDryRun(ctx: Context, targetFiles: readonly string[], opts: OfflineDryRunOptions): Promise<number> {
  const target = loadPlan({ files: targetFiles, projectName: opts.project, env: ctx.env });
  const currentFiles = opts.current.map((f) => path.resolve(ctx.cwd, f));
  if (!opts.project) {
    const own = loadPlan({ files: currentFiles, env: ctx.env }).project;
    if (own !== target.project) throw new ValidationError(`--current ${currentFiles.join(', ')} belongs to compose project "${own}" but the target plan to "${target.project}": a rollout stays within one project (pass --project to name it).`);
  }
  const current = loadPlan({ files: currentFiles, projectName: target.project, env: ctx.env });
  registerPlanSecrets(ctx.secrets, target, current);

  const warnings: string[] = [];
  const unchecked = ['that the engine has the images the target needs', 'that the fleet really runs the current files and is healthy'];
  const composeThere = await ctx.compose.version().then(
    () => true,
    () => false,
  );
  if (composeThere) {
    try {
      await ctx.compose.validate(composeTargetOf(target));
    } catch (err) {
      // compose resolves the docker context before reading any file: "Failed to initialize: unable to resolve docker
      // endpoint: context "x": context not found". That says nothing about the plan, and offline no engine is needed.
      if (!(err instanceof ValidationError) || !/unable to resolve docker endpoint/.test(err.message)) throw err;
      const why = err.message.replace(/^.*?rejects .*?: (Failed to initialize: )?/, '').replace(/: open \S+.*$/, '');
      unchecked.push(`docker compose config --quiet of the target (compose cannot start here: ${why})`);
    }
  } else unchecked.push('docker compose config --quiet of the target (docker compose is not installed here)');

  const plan = planRollout({ target, current, live: assumedFleet(current), composeView: undefined, policy: opts.policy });
  const host = await resolveHost(target, opts.host, undefined);
  const hostSkipped = host ? undefined : 'offline, and no --host-cpus/--host-memory nor x-arena-deploy.host: host rules skipped';
  const targetAnalysis = analyzeWithConfigs(target, host);
  const analysis = host ? targetAnalysis : { ...targetAnalysis, hostSkipped };
  const images = [...new Set(plan.steps.flatMap((s) => (s.kind === 'update' ? s.updates.map((u) => target.services[u.service]?.image ?? `${target.project}-${u.service}`) : [])))];
  if (images.length) unchecked[0] = `that the engine has the images the target needs (${images.join(', ')})`;

  if (opts.output === 'text') {
    const redact = (t: string) => redactText(t, ctx.secrets);
    ctx.io.stdout.write(redact(`Computed offline from the files (--offline): no engine was asked; every service of the current plan is assumed running and healthy, and the field-by-field diff of the files decides what changed.\nNot checked offline: ${unchecked.join('; ')}.\n\n`));
    const analysisWarnings = groupFindings(analysis.findings).filter((g) => g.severity === 'warning').map((g) => `${g.rule} [${g.services.join(', ') || 'host'}]: ${g.message}`);
    ctx.io.stdout.write(redact(renderDryRun({ ...plan, warnings: [...plan.warnings, ...warnings, ...analysisWarnings] }, [])));
  } else {
    writeDryRun(ctx, opts.output, { plan, target, current, mode: 'offline', composeAnswered: false, host, hostSkipped, targetAnalysis: analysis, warnings, unchecked });
  }
  const errors = groupFindings(analysis.findings).filter((g) => g.severity === 'error');
  if (errors.length && !opts.force) {
    const first = errors[0];
    throw new ValidationError(`The target plan would fail on ${host ? `a host of ${host.cpus} vCPUs` : 'its host'}: ${first?.message}${(first?.services.length ?? 0) > 1 ? ` The same for ${compactNames(first?.services.slice(1) ?? [])}.` : ''}${errors.length > 1 ? ` (And ${errors.length - 1} more error${errors.length > 2 ? 's' : ''}.)` : ''}`);
  }
  return 0;
}
