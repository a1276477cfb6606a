/** `arena-deploy validate [PLAN...]`: the guide's diagnosis from the compose files themselves. */
import path from 'node:path';
import { analyzeWithConfigs, resolveHost, type HostFlags } from '../../analysis/plan-analysis.js';
import { loadPlan } from '../../plan/load-plan.js';
import { analysisJson, renderAnalysis } from '../../report/render-analysis.js';
import { ExitCode } from '../../errors.js';
import { composeTargetOf } from '../../engine/compose-commands.js';
import type { Context } from '../context.js';
import { resolvePlanFiles } from './rollout.js';

/** Flags of `validate`. */
export interface ValidateOptions {
  readonly files: readonly string[];
  readonly against?: readonly string[] | undefined;
  readonly project?: string | undefined;
  readonly host: HostFlags;
  readonly output: 'text' | 'json';
}

/** Analyzes the plan (and the one it replaces); exit 3 when any rule says error. */
export async function validateCommand(ctx: Context, opts: ValidateOptions): Promise<number> {
  const plan = loadPlan({ files: resolvePlanFiles(opts.files, ctx.cwd), projectName: opts.project, env: ctx.env });
  // compose's own check needs no engine; where compose is not installed the analysis stands alone.
  const composeThere = await ctx.compose.version().then(() => true, () => false);
  if (composeThere) await ctx.compose.validate(composeTargetOf(plan));
  const host = await resolveHost(plan, opts.host, ctx.engine);
  const analysis = analyzeWithConfigs(plan, host);
  let against: { plan: typeof plan; analysis: typeof analysis } | undefined;
  if (opts.against?.length) {
    const before = loadPlan({ files: opts.against.map((f) => path.resolve(ctx.cwd, f)), projectName: opts.project, env: ctx.env });
    against = { plan: before, analysis: analyzeWithConfigs(before, host) };
  }
  if (opts.output === 'json') ctx.io.stdout.write(`${JSON.stringify(analysisJson(plan, analysis, host, against), null, 2)}\n`);
  else ctx.io.stdout.write(renderAnalysis(plan, analysis, host, against));
  return analysis.findings.some((f) => f.severity === 'error') ? ExitCode.validation : ExitCode.ok;
}
