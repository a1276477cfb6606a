/** `arena-deploy history`: past rollouts from the journal. */
import path from 'node:path';
import { ENGINE_LOST, isUnfinished, journalFile, openRollouts, readJournal, rollouts } from '../../rollout/journal.js';
import { renderTable } from '../../report/table.js';
import { formatElapsed } from '../../plan/units.js';
import { compactNames } from '../../util/names.js';
import { stateDir } from '../../util/state-dir.js';
import type { Context } from '../context.js';

/** Flags of `history`. */
export interface HistoryOptions {
  readonly project?: string | undefined;
  readonly output: 'text' | 'json';
  readonly stateDir?: string | undefined;
}

/** Prints the rollouts of the journal, oldest first; a torn line is skipped and reported. */
export async function historyCommand(ctx: Context, opts: HistoryOptions): Promise<number> {
  const state = stateDir(opts.stateDir, ctx.env);
  const read = await readJournal(state);
  const entries = rollouts(read.records).filter((e) => !opts.project || e.started.project === opts.project);
  for (const line of read.skippedLines) ctx.io.stderr.write(`warning: ${journalFile(state)}:${line}: not a journal record (torn by a crash?), skipped.\n`);
  const open = new Set(openRollouts(entries).map((e) => e.started.id));
  const result = (e: (typeof entries)[number]) => {
    const resumedBy = entries.find((l) => l.started.resumes === e.started.id);
    const kind = e.started.kind === 'rollback' ? 'rollback: ' : '';
    if (e.finished && !(e.finished.outcome === ENGINE_LOST && resumedBy)) return `${kind}${e.finished.outcome}${open.has(e.started.id) ? ' (unfinished: resumable)' : ''}`;
    if (resumedBy) return `${e.finished ? e.finished.outcome : 'killed'}, resumed by ${resumedBy.started.id}`;
    if (!isUnfinished(e)) return `${kind}running`;
    return open.has(e.started.id) ? `${kind}unfinished (its process is gone)` : `${kind}killed, settled by a later run`;
  };
  if (opts.output === 'json') {
    ctx.io.stdout.write(`${JSON.stringify({ version: 1, journal: journalFile(state), skippedLines: read.skippedLines, rollouts: entries.map((e) => ({ ...e.started, result: result(e), backup: e.backup ?? null, changing: e.changing, finished: e.finished ?? null })) }, null, 2)}\n`);
    return 0;
  }
  if (entries.length === 0) {
    ctx.io.stdout.write(`No rollouts${opts.project ? ` of ${opts.project}` : ''} in ${journalFile(state)} yet.\n`);
    return 0;
  }
  const rows = entries.map((e) => [
    e.started.at.replace('T', ' ').slice(0, 19),
    `${e.started.user}@${e.started.host}`,
    e.started.project,
    `${e.started.plan.map((f) => path.basename(f)).join(' + ')} (${e.started.planHash.slice(0, 12)})`,
    result(e),
    e.finished ? formatElapsed(e.finished.durationMs) : '-',
    e.finished ? compactNames(e.finished.changed) || '-' : '-',
  ]);
  ctx.io.stdout.write(`${renderTable(['WHEN (UTC)', 'WHO', 'PROJECT', 'PLAN (SHA256)', 'RESULT', 'DURATION', 'SERVICES CHANGED'], rows)}\n`);
  return 0;
}
