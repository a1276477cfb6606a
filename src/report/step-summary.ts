/** The markdown summary appended to $GITHUB_STEP_SUMMARY: verdict, per-service table, backup, duration (pure rendering). */
import { formatElapsed } from '../plan/units.js';
import type { FinalReport } from './json-report.js';

const ICON: Partial<Record<FinalReport['outcome'], string>> = {
  succeeded: '✅',
  'nothing-to-do': '✅',
  restored: '✅',
  'rolled-back': '↩️',
  declined: '⏹️',
  refused: '⛔',
  invalid: '⛔',
  interrupted: '⏹️',
  'engine-lost': '⚠️',
  'rollback-failed': '🚨',
  'restore-failed': '🚨',
  failed: '🚨',
};

/** A markdown table cell: no line breaks, no pipes that would split the cell. */
function cell(s: string): string {
  return s.replace(/\r?\n/g, ' ').replace(/\|/g, '\\|');
}

/** Renders a final report as GitHub-flavoured markdown (pure). */
export function renderStepSummary(r: FinalReport): string {
  const out: string[] = [];
  out.push(`### ${ICON[r.outcome] ?? ''} arena-deploy ${r.command}${r.project ? ` of \`${r.project}\`` : ''}: ${r.outcome} (exit ${r.exitCode})`.replace('###  ', '### '));
  out.push('');
  out.push(cell(r.verdict));
  out.push('');
  if (r.services.length) {
    out.push('| Service | Change | Healthy after | Result | Config |');
    out.push('|---|---|---|---|---|');
    for (const s of r.services) out.push(`| ${cell(s.service)} | ${cell(s.change)} | ${s.timeToHealthyMs === null ? '-' : formatElapsed(s.timeToHealthyMs)} | ${cell(s.result)} | ${s.config} |`);
    out.push('');
  }
  if (r.failure?.details.length) {
    out.push('<details><summary>Why it failed</summary>', '', '```', ...r.failure.details, '```', '', '</details>', '');
  }
  if (r.rollbackErrors.length) {
    out.push('Rollback errors:', ...r.rollbackErrors.map((e) => `- ${cell(e)}`), '');
  }
  if (r.warnings.length) {
    out.push(`Warnings (${r.warnings.length}):`, ...r.warnings.map((w) => `- ${cell(w)}`), '');
  }
  const facts = [
    r.engine ? `Engine: \`${r.engine}\`` : '',
    r.plan ? `Plan: ${r.plan.files.map((f) => `\`${f.path}\`${f.sha256 ? ` (sha256 \`${f.sha256.slice(0, 12)}\`)` : ''}`).join(', ')}` : '',
    r.backupDir ? `Backup: \`${r.backupDir}\`` : '',
    `Duration: ${formatElapsed(r.durationMs)}`,
  ].filter(Boolean);
  out.push(facts.join('  \n'));
  return `${out.join('\n')}\n\n`;
}
