/** The dry run as GitHub-flavoured markdown, for a reviewer to paste into a pull request. Pure. */
import type { Analysis } from '../analysis/analyze-plan.js';
import type { FieldChange } from '../plan/diff-services.js';
import { compactNames } from '../util/names.js';
import { ALLOCATION_HEADER, allocationNotes, allocationRows, comparisonRows, groupFindings } from './render-analysis.js';
import { isMasked, type DryRunReport, type ServiceGroup } from './dry-run-report.js';

/** Text for a markdown table cell or a line: markdown punctuation escaped, newlines as `<br>`, so no value breaks the table. */
export function mdText(value: string): string {
  return value
    .replace(/[\\`*_[\]<>|~#]/g, (c) => `\\${c}`)
    .replace(/\r\n|\r|\n/g, '<br>');
}

/**
 * A value as inline code in a table cell: fenced with more backticks than it holds, `|` escaped (GitHub's tables
 * unescape it inside code too), newlines shown as `\n` since a code span cannot hold a line break.
 */
export function mdCode(value: string): string {
  if (value === '') return '*(empty)*';
  // A backslash before a pipe cannot be written in a code span of a table (the table reads `\\|` as a backslash, then a
  // cell boundary): such a value is shown as escaped text instead.
  if (/\\\|/.test(value.replace(/\r\n|\r|\n/g, ''))) return mdText(value);
  const v = value.replace(/\r\n|\r|\n/g, '\\n').replace(/\|/g, '\\|');
  const longest = Math.max(0, ...[...v.matchAll(/`+/g)].map((m) => m[0].length));
  const fence = '`'.repeat(longest + 1);
  const pad = v.startsWith('`') || v.endsWith('`') || /^ .* $/.test(v) ? ' ' : '';
  return `${fence}${pad}${v}${pad}${fence}`;
}

/** A GitHub table; every cell is already escaped. */
function table(header: readonly string[], rows: ReadonlyArray<readonly string[]>, align?: readonly ('l' | 'r')[]): string[] {
  const sep = header.map((_, i) => (align?.[i] === 'r' ? '---:' : '---'));
  return [`| ${header.join(' | ')} |`, `| ${sep.join(' | ')} |`, ...rows.map((r) => `| ${r.join(' | ')} |`)];
}

function details(summary: string, body: readonly string[]): string[] {
  return ['<details>', `<summary>${mdText(summary)}</summary>`, '', ...body, '', '</details>'];
}

const SEVERITY = { error: '🛑 error', warning: '⚠️ warning', info: 'ℹ️ note' } as const;

const ROLE: Record<ServiceGroup['role'], string> = {
  rolled: 'recreate, rolled',
  other: 'recreate',
  added: 'create (new)',
  retired: 'retire',
  stateful: 'keep (stateful, differs)',
  kept: 'keep (not in the target)',
  unchanged: 'keep (no change)',
};

function names(list: readonly string[]): string {
  return mdText(compactNames(list));
}

/** Renders the report; the caller has already redacted it (redactReport). */
export function renderDryRunMarkdown(r: DryRunReport): string {
  const out: string[] = [];
  out.push(`## arena-deploy rollout dry run: ${mdText(r.project)}`);
  out.push('');
  out.push(`**${mdText(r.headline)}**`);
  out.push('');
  const how =
    r.mode === 'offline'
      ? 'Computed offline from the files (`--offline`): no engine was asked; the fleet is assumed to run the current files, every service running and healthy, so compose\'s own verdict on what changed was not asked and the field-by-field diff of the files decides.'
      : r.changedBy === 'compose'
        ? `Read from the engine at ${mdText(r.engine ?? 'unknown')}: which services change is compose's own verdict (\`docker compose up --dry-run\`; for services with depends\\_on, such as a load balancer, the diff of the files decides: compose's dry run always says Recreate for them); the fields below are the tool's diff of the files.`
        : `Read from the engine at ${mdText(r.engine ?? 'unknown')}; compose's own verdict was not available, so the field-by-field diff of the files decides what changed.`;
  out.push(`> ${how} Nothing was changed.`);
  if (r.unchecked.length) out.push('>', `> Not checked ${r.mode === 'offline' ? 'offline' : ''}: ${r.unchecked.map(mdText).join('; ')}.`);
  out.push('');
  out.push(`- **Project:** ${mdCode(r.project)}`);
  out.push(`- **Current:** ${r.currentFiles.map(mdCode).join(', ')}`);
  out.push(`- **Target:** ${r.targetFiles.map(mdCode).join(', ')}`);
  out.push(`- **Host:** ${hostCell(r)}`);
  out.push('');

  out.push(`### Errors and warnings (${r.counts.errors} ${r.counts.errors === 1 ? 'error' : 'errors'}, ${r.counts.warnings} ${r.counts.warnings === 1 ? 'warning' : 'warnings'}${r.counts.notes ? `, ${r.counts.notes} ${r.counts.notes === 1 ? 'note' : 'notes'}` : ''})`);
  out.push('');
  if (r.problems.length === 0) out.push('None.');
  else out.push(...table(['severity', 'rule', 'services', 'finding'], r.problems.map((p) => [SEVERITY[p.severity], p.rule ? mdCode(p.rule) : 'rollout', p.services.length ? names(p.services) : p.source === 'analysis' ? 'host' : '', mdText(p.message)])));
  if (r.counts.errors) {
    out.push('');
    out.push('The rollout refuses to start with these errors (`--force` overrides).');
  }
  out.push('');

  out.push('### Services');
  out.push('');
  out.push(...table(['services', 'action', 'what changes'], r.groups.map((g) => [names(g.services), ROLE[g.role], mdText(summary(g))])));
  out.push('');

  const changed = r.groups.filter((g) => g.role !== 'unchanged' && g.role !== 'retired' && g.role !== 'kept' && g.changes.some((c) => c.field !== 'service'));
  if (changed.length) {
    out.push('### Changes per service');
    out.push('');
    for (const g of changed) {
      out.push(`#### ${names(g.services)}${g.services.length > 1 ? ` (${g.services.length} services, the same changes)` : ''}`);
      out.push('');
      out.push(...table(['field', 'current', 'target'], g.changes.map((c) => [mdText(c.field), value(c, 'from'), value(c, 'to')])));
      if (g.note) {
        out.push('');
        out.push(mdText(g.note[0]?.toUpperCase() + g.note.slice(1) + '.'));
      }
      out.push('');
    }
    if (r.groups.some((g) => g.changes.some(isMasked))) {
      out.push('Values of secret-looking keys and of env files are masked; `(old)` → `(new)` says that the value changed.');
      out.push('');
    }
  }

  out.push('### Steps');
  out.push('');
  out.push('In this order; the same step list the rollout runs.');
  out.push('');
  for (const s of r.steps) s.lines.forEach((l, i) => out.push(`${s.n + i}. ${mdText(l)}`));
  out.push('');

  out.push('### Capacity (`arena-deploy validate`)');
  out.push('');
  const t = r.target.analysis;
  const c = r.current.analysis;
  if (t && c) {
    out.push(...table(['', 'current', 'target'], comparisonRows(c, t).map(([label, a, b]) => [mdText(label ?? ''), mdText(a ?? ''), mdText(b ?? '')])));
    out.push('');
  } else if (r.current.unavailable) {
    out.push(`The current plan could not be analyzed: ${mdText(r.current.unavailable)}`);
    out.push('');
  }
  if (c) {
    const fixed = r.fixed.map((g) => `${mdCode(g.rule)} (${g.severity}${g.services.length ? `, ${names(g.services)}` : ''})`);
    const introduced = r.introduced.map((g) => `${mdCode(g.rule)} (${g.severity}${g.services.length ? `, ${names(g.services)}` : ''})`);
    out.push(`- Findings of the current plan that the target no longer has: ${fixed.length ? fixed.join(', ') : 'none'}.`);
    out.push(`- Findings the target brings: ${introduced.length ? introduced.join(', ') : 'none'}.`);
    out.push('');
  }
  if (t) out.push(...details(`Resource allocation of the target (${r.target.files.join(', ')})`, allocation(t)), '');
  if (c) out.push(...details(`Resource allocation of the current plan (${r.current.files.join(', ')})`, allocation(c)), '');
  if (c && c.findings.length) {
    const rows = groupsOf(c).map((g) => [SEVERITY[g.severity], mdCode(g.rule), g.services.length ? names(g.services) : 'host', mdText(g.message)]);
    const tally = (sev: 'error' | 'warning' | 'info', word: string) => {
      const n = groupsOf(c).filter((g) => g.severity === sev).length;
      return `${n} ${word}${n === 1 ? '' : 's'}`;
    };
    out.push(...details(`Findings of the current plan (${tally('error', 'error')}, ${tally('warning', 'warning')}, ${tally('info', 'note')})`, table(['severity', 'rule', 'services', 'finding'], rows)), '');
  }
  out.push(`<sub>arena-deploy dry run, report version ${r.version}.</sub>`);
  return `${out.join('\n')}\n`;
}

function groupsOf(a: Analysis) {
  const order = { error: 0, warning: 1, info: 2 } as const;
  return [...groupFindings(a.findings)].sort((x, y) => order[x.severity] - order[y.severity]);
}

function allocation(a: Analysis): string[] {
  const rows = allocationRows(a).map((row) => row.map((cell) => mdText(cell)));
  return [...table(ALLOCATION_HEADER.map(mdText), rows, ['l', 'r', 'r', 'r', 'r', 'r', 'r']), '', ...allocationNotes(a).map(mdText)];
}

function hostCell(r: DryRunReport): string {
  if (!r.host) return mdText(`unknown: ${r.hostSkipped ?? 'host rules skipped'}`);
  const from = r.host.source === 'engine' ? 'the engine' : r.host.source === 'flags' ? '--host-cpus/--host-memory' : 'x-arena-deploy.host';
  const mb = (b: number) => `${Math.round(b / 1024 ** 2)} MB`;
  return mdText(`${r.host.cpus} vCPUs, ${mb(r.host.memoryBytes)} memory, ${mb(r.host.reserveMemoryBytes)} kept in reserve (from ${from})`);
}

function summary(g: ServiceGroup): string {
  if (g.role === 'retired') return 'not in the target: stopped and removed, after the others are updated';
  if (g.role === 'kept') return 'not in the target: left running (--include SERVICE removes it)';
  if (g.role === 'unchanged') return 'no change';
  const fields = g.changes.map((c) => (c.field === 'service' ? 'new service' : c.field));
  const shown = fields.slice(0, 6).join(', ');
  return `${fields.length > 6 ? `${shown}, +${fields.length - 6} more` : shown}${g.role === 'stateful' ? ' (stateful: not recreated unless --include)' : ''}`;
}

function value(c: FieldChange, side: 'from' | 'to'): string {
  const v = c[side];
  // The marker of a service that is new or gone, and the "nothing before" of a new service's fields, are not values.
  if (c.field === 'service' || v === '—') return mdText(v);
  return mdCode(v);
}
