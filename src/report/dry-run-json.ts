/** `rollout --dry-run --output json`: the dry-run report as one JSON object, the same content as the markdown. Pure. */
import type { Analysis } from '../analysis/analyze-plan.js';
import type { DryRunReport } from './dry-run-report.js';

/** The object printed by `--dry-run --output json` (`kind: "dry-run"`); the caller has already redacted the report. */
export function dryRunJson(r: DryRunReport): unknown {
  const side = (s: DryRunReport['target']) => ({
    files: s.files,
    findings: s.analysis ? s.analysis.findings.map((f) => ({ rule: f.rule, severity: f.severity, service: f.service ?? null, message: f.message, values: f.values })) : null,
    tables: s.analysis ? tables(s.analysis) : null,
    unavailable: s.unavailable ?? null,
  });
  return {
    version: r.version,
    kind: 'dry-run',
    project: r.project,
    mode: r.mode,
    engine: r.engine ?? null,
    changedBy: r.changedBy,
    current: r.currentFiles,
    target: r.targetFiles,
    headline: r.headline,
    counts: r.counts,
    parallelism: r.parallelism,
    problems: r.problems.map((p) => ({ severity: p.severity, source: p.source, rule: p.rule ?? null, services: p.services, message: p.message })),
    services: r.services.map((s) => ({ service: s.service, role: s.role, action: s.action, changes: s.changes, note: s.note ?? null })),
    steps: r.steps,
    host: r.host ? { cpus: r.host.cpus, memoryBytes: r.host.memoryBytes, reserveMemoryBytes: r.host.reserveMemoryBytes, source: r.host.source } : null,
    hostSkipped: r.hostSkipped ?? null,
    unchecked: r.unchecked,
    analysis: { target: side(r.target), current: side(r.current) },
    fixed: r.fixed.map((g) => ({ rule: g.rule, severity: g.severity, services: g.services })),
    introduced: r.introduced.map((g) => ({ rule: g.rule, severity: g.severity, services: g.services })),
  };
}

function tables(a: Analysis): Analysis['tables'] {
  return a.tables;
}
