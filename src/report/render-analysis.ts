/** Human and JSON renderings of a plan analysis: findings grouped by rule, then the guide's tables. */
import type { Analysis, Finding, Host } from '../analysis/analyze-plan.js';
import type { Plan } from '../plan/types.js';
import { compactNames } from '../util/names.js';
import { renderTable } from './table.js';

/** Version of the JSON report of `validate`. */
export const VALIDATE_REPORT_VERSION = 1;

/** The same finding on several services, shown once. */
export interface FindingGroup {
  readonly rule: string;
  readonly severity: Finding['severity'];
  readonly services: readonly string[];
  readonly message: string;
}

/** Groups findings whose rule and numbers are equal (memory-overcommit on web-1 … web-10 is one line). */
export function groupFindings(findings: readonly Finding[]): FindingGroup[] {
  const groups = new Map<string, { f: Finding; services: string[] }>();
  for (const f of findings) {
    const key = `${f.rule}|${f.severity}|${JSON.stringify(f.values)}`;
    const g = groups.get(key);
    if (g) g.services.push(f.service ?? '');
    else groups.set(key, { f, services: f.service ? [f.service] : [] });
  }
  return [...groups.values()].map(({ f, services }) => ({
    rule: f.rule,
    severity: f.severity,
    services,
    message: f.message,
  }));
}

function servicesLabel(services: readonly string[]): string {
  if (services.length === 0) return 'host';
  return compactNames(services);
}

function num(n: number | undefined, suffix = ''): string {
  return n === undefined ? '-' : `${n}${suffix}`;
}

function signed(n: number | undefined): string {
  return n === undefined ? '-' : n >= 0 ? `+${n}` : String(n);
}

/** The header of the allocation table. */
export const ALLOCATION_HEADER = ['SERVICE', 'CONTAINERS', 'CPU LIMIT', 'MEMORY LIMIT', 'WORKERS × THREADS', 'EST. MEMORY', 'HEADROOM'] as const;

/** The rows of the allocation table (per service, then total and host), for the text and markdown reports. */
export function allocationRows(a: Analysis): string[][] {
  const t = a.tables;
  const rows = t.services.map((r) => [
    r.service,
    String(r.containers),
    num(r.cpuLimit),
    num(r.memoryLimitMb, ' MB'),
    r.workers === undefined ? '-' : `${r.workers} × ${r.threads} = ${r.handlers}`,
    num(r.estimatedMemoryMb, ' MB'),
    signed(r.headroomMb) + (r.headroomMb === undefined ? '' : ' MB'),
  ]);
  const plusCpu = t.totals.unlimitedCpu.length ? '+' : '';
  rows.push(['total', String(t.totals.containers), `${t.totals.cpuLimits}${plusCpu}`, `${t.totals.memoryLimitsMb} MB${t.totals.unlimitedMemory.length ? '+' : ''}`, String(t.totals.handlers), '', '']);
  if (t.host) rows.push(['host', '', `${t.host.cpus} (${t.host.cpuRatioPct} % used)`, `${t.host.memoryMb} MB (${t.host.memoryRatioPct} % used)`, '', '', '']);
  return rows;
}

/** The sentences under the allocation table: concurrency and RPS, services without a CPU limit. */
export function allocationNotes(a: Analysis): string[] {
  const t = a.tables;
  const lines = [`Concurrency: ${t.totals.handlers} request handlers; sustained about ${t.totals.rpsAi} RPS for AI requests (0.3 per thread) or ${t.totals.rpsFastApi} RPS for fast API calls (20 per thread), the guide's rates.`];
  if (t.totals.unlimitedCpu.length) lines.push(`No CPU limit: ${t.totals.unlimitedCpu.join(', ')} (not in the CPU total).`);
  return lines;
}

/** The allocation, concurrency and headroom tables of one plan. */
export function renderTables(a: Analysis): string {
  return [renderTable(ALLOCATION_HEADER, allocationRows(a)), '', ...allocationNotes(a)].join('\n');
}

function hostLine(host: Host | undefined, skipped: string | undefined): string {
  if (!host) return `Host: unknown — ${skipped ?? 'host rules skipped'}.`;
  const from = host.source === 'engine' ? 'the Docker engine this tool talks to; pass --host-cpus and --host-memory to check against another host' : host.source === 'flags' ? '--host-cpus/--host-memory' : 'x-arena-deploy.host';
  return `Host: ${host.cpus} vCPUs, ${Math.round(host.memoryBytes / 1024 ** 2)} MB memory, ${Math.round(host.reserveMemoryBytes / 1024 ** 2)} MB kept in reserve (from ${from}).`;
}

/** The human report of `validate`. */
export function renderAnalysis(plan: Plan, a: Analysis, host: Host | undefined, against?: { plan: Plan; analysis: Analysis }): string {
  const out: string[] = [];
  out.push(`Plan: ${plan.files.join(', ')} (project ${plan.project}, ${Object.keys(plan.services).length} services)`);
  out.push(hostLine(host, a.hostSkipped));
  out.push('');
  const groups = groupFindings(a.findings);
  const errors = groups.filter((g) => g.severity === 'error').length;
  const warnings = groups.filter((g) => g.severity === 'warning').length;
  const notes = groups.length - errors - warnings;
  out.push(`Findings: ${errors} error${errors === 1 ? '' : 's'}, ${warnings} warning${warnings === 1 ? '' : 's'}${notes ? `, ${notes} note${notes === 1 ? '' : 's'}` : ''} (a finding on several services is shown once)`);
  for (const g of groups) out.push(`  ${g.severity.padEnd(7)}  ${g.rule}  [${servicesLabel(g.services)}]\n           ${g.message}`);
  out.push('');
  out.push('Resource allocation, concurrency and memory headroom (memory model: base + workers × per-worker + overhead):');
  out.push(renderTables(a));
  if (against) {
    out.push('');
    out.push(`Side by side: ${against.plan.files.join(', ')} (--against) and ${plan.files.join(', ')}`);
    out.push(renderComparison(against.analysis, a, [label(against.plan), label(plan)]));
  }
  return `${out.join('\n')}\n`;
}

/** Two plans side by side: the guide's before/after numbers. */
function label(p: Plan): string {
  return p.files.map((f) => f.split('/').pop() ?? f).join(' + ');
}

export function renderComparison(before: Analysis, after: Analysis, headers: readonly [string, string] = ['BEFORE', 'AFTER']): string {
  return renderTable(['', headers[0], headers[1]], comparisonRows(before, after));
}

/** The guide's before/after rows (label, before, after), for the text and markdown reports. */
export function comparisonRows(before: Analysis, after: Analysis): string[][] {
  const web = (a: Analysis) => a.tables.services.filter((r) => r.workers !== undefined);
  const first = (a: Analysis) => web(a)[0];
  const b = first(before);
  const c = first(after);
  return [
    ['gunicorn containers', String(web(before).reduce((n, r) => n + r.containers, 0)), String(web(after).reduce((n, r) => n + r.containers, 0))],
    ['workers per container', num(b?.workers), num(c?.workers)],
    ['threads per worker', num(b?.threads), num(c?.threads)],
    ['concurrent handlers', String(before.tables.totals.handlers), String(after.tables.totals.handlers)],
    ['memory limit per container', num(b?.memoryLimitMb, ' MB'), num(c?.memoryLimitMb, ' MB')],
    ['estimated memory per container', num(b?.estimatedMemoryMb, ' MB'), num(c?.estimatedMemoryMb, ' MB')],
    ['headroom per container', `${signed(b?.headroomMb)} MB`, `${signed(c?.headroomMb)} MB`],
    ['CPU limits in total', `${before.tables.totals.cpuLimits}${before.tables.totals.unlimitedCpu.length ? '+' : ''}`, `${after.tables.totals.cpuLimits}${after.tables.totals.unlimitedCpu.length ? '+' : ''}`],
    ['errors (per service)', String(before.findings.filter((f) => f.severity === 'error').length), String(after.findings.filter((f) => f.severity === 'error').length)],
  ];
}

/** The JSON report of `validate`. */
export function analysisJson(plan: Plan, a: Analysis, host: Host | undefined, against?: { plan: Plan; analysis: Analysis }): unknown {
  const one = (p: Plan, x: Analysis) => ({
    plan: { files: p.files, project: p.project, services: Object.keys(p.services) },
    findings: x.findings.map((f) => ({ rule: f.rule, severity: f.severity, service: f.service ?? null, message: f.message, values: f.values })),
    tables: x.tables,
  });
  return {
    version: VALIDATE_REPORT_VERSION,
    ...one(plan, a),
    host: host ? { cpus: host.cpus, memoryBytes: host.memoryBytes, reserveMemoryBytes: host.reserveMemoryBytes, source: host.source } : null,
    hostSkipped: a.hostSkipped ?? null,
    ...(against ? { against: one(against.plan, against.analysis) } : {}),
  };
}
