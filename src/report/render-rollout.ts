/** Human renderings of a rollout: the dry run (the planner's steps) and the summary after a run. */
import { formatDuration, formatElapsed } from '../plan/units.js';
import type { RolloutPlan, Step } from '../rollout/plan-rollout.js';
import type { RolloutResult } from '../rollout/execute-rollout.js';
import { renderTable } from './table.js';

/** The lines of one step, as the dry run prints them. */
export function describeStep(step: Step): string[] {
  switch (step.kind) {
    case 'validate':
      return ['validate: docker compose config --quiet, same compose project, images present on the engine'];
    case 'preflight':
      return [`preflight: ${step.services.length ? step.services.join(', ') : 'no rolled service'} must be running and not unhealthy`];
    case 'backup':
      return ['backup: current compose files, the files they reference, docker inspect of the project, sha256 manifest'];
    case 'pause':
      return [`pause ${formatDuration(step.ms)}`];
    case 'update':
      return step.updates.map(
        (u) =>
          // The drain and the probe are the executor's, decided when it runs (which nginx mounts which conf, which port
          // is published): the step says where they come in.
          `${step.updates.length > 1 ? `batch ${step.batch}: ` : ''}${u.action === 'recreate' ? `drain ${u.service} from nginx (where a conf routes to it) → ` : ''}${u.action} ${u.service} → wait ${u.waitFor} (${u.waitFor === 'healthy' ? "Docker's status, or the health URL on its published port; " : ''}deadline ${formatDuration(u.healthDeadlineMs)})${u.action === 'recreate' ? ' → back into nginx' : ''} → monitor ${formatDuration(u.monitorMs)}`,
      );
    case 'retire':
      return step.services.map((r) => `retire ${r.service}: stop (grace ${r.stopTimeoutS}s) and remove ${r.containerIds.length} container(s)`);
    case 'verify':
      return [`verify: ${step.services.length} services running and healthy, nothing left of retired ones`];
  }
}

/** The dry run: what changes per service, then the ordered steps the executor would run. */
export function renderDryRun(plan: RolloutPlan, checks: readonly string[]): string {
  const out: string[] = [];
  out.push(`Rollout plan for compose project "${plan.project}" (dry run: nothing is changed)`);
  out.push(`  current: ${plan.currentFiles.join(', ')}`);
  out.push(`  target:  ${plan.targetFiles.join(', ')}`);
  out.push('');
  const width = Math.max(7, ...plan.services.map((s) => s.service.length));
  const actionOf = (s: RolloutPlan['services'][number]) => (s.role === 'stateful' ? 'keep (stateful, differs)' : s.role === 'kept' ? 'keep (not in the target)' : s.role === 'unchanged' ? 'keep' : s.action);
  const actionWidth = Math.max(6, ...plan.services.map((s) => actionOf(s).length));
  out.push(`${'SERVICE'.padEnd(width)}  ${'ACTION'.padEnd(actionWidth)}  CHANGES`);
  for (const s of plan.services) {
    const lines =
      s.role === 'retired' ? ['not in the target: stopped and removed'] : s.role === 'kept' ? ['not in the target: left running (pass --include to remove it)'] : s.role === 'unchanged' ? ['no change'] : s.changes.map((c) => (c.field === 'service' ? 'new service' : `${c.field}: ${c.from} → ${c.to}`));
    lines.forEach((l, i) => out.push(`${(i === 0 ? s.service : '').padEnd(width)}  ${(i === 0 ? actionOf(s) : '').padEnd(actionWidth)}  ${l}`));
  }
  out.push('');
  out.push('Steps:');
  let n = 0;
  for (const step of plan.steps) for (const line of describeStep(step)) out.push(`  ${String(++n).padStart(2)}. ${line}`);
  if (plan.warnings.length || checks.length) {
    out.push('');
    out.push('Warnings:');
    for (const w of [...plan.warnings, ...checks]) out.push(`  - ${w}`);
  }
  return `${out.join('\n')}\n`;
}

/** The summary table after a run, then its verdict; `engine` names the engine it ran against. */
export function renderSummary(result: RolloutResult, engine?: string): string {
  const rows = result.services.map((s) => [s.service, s.change.length > 72 ? `${s.change.slice(0, 71)}…` : s.change, s.timeToHealthyMs === undefined ? '-' : formatElapsed(s.timeToHealthyMs), s.result]);
  const lines = [renderTable(['SERVICE', 'CHANGE', 'HEALTHY AFTER', 'RESULT'], rows), ''];
  if (engine) lines.push(`Engine: ${engine}`);
  if (result.backupDir) lines.push(`Backup: ${result.backupDir}`);
  lines.push(`Took ${formatElapsed(result.durationMs)}.`);
  return `${lines.join('\n')}\n`;
}
