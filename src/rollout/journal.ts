/** The journal: an append-only record of rollouts (JSON lines) for `history` and for noticing a rollout that never finished. */
import { createHash } from 'node:crypto';
import { promises as fs, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PreflightError } from '../errors.js';

/** Version of a journal line's format. */
export const JOURNAL_VERSION = 1;

/** Written before the first change of a rollout. */
export interface RolloutStarted {
  readonly v: typeof JOURNAL_VERSION;
  readonly type: 'rollout-started';
  readonly id: string;
  readonly at: string;
  readonly user: string;
  readonly host: string;
  readonly pid: number;
  readonly project: string;
  readonly plan: readonly string[];
  /** sha256 over the target files' contents, in order. */
  readonly planHash: string;
  /** A rollout (the default when absent) or a `rollback`. */
  readonly kind?: 'rollout' | 'rollback';
  /** The interrupted rollout this one resumes (`rollout --resume`). */
  readonly resumes?: string;
  /** The host's boot id when it started: after a reboot its pid may name another process. */
  readonly boot?: string;
}

/** Written during a rollout: the backup it wrote, and each service just before it is changed. */
export type RolloutStep =
  | { readonly v: typeof JOURNAL_VERSION; readonly type: 'rollout-step'; readonly id: string; readonly at: string; readonly step: 'backup'; readonly backup: string }
  | { readonly v: typeof JOURNAL_VERSION; readonly type: 'rollout-step'; readonly id: string; readonly at: string; readonly step: 'changing'; readonly service: string; readonly change: 'updated' | 'created' | 'retired' }
  | { readonly v: typeof JOURNAL_VERSION; readonly type: 'rollout-step'; readonly id: string; readonly at: string; readonly step: 'done'; readonly service: string };

/** Written when a rollout ends, whatever the outcome. */
export interface RolloutFinished {
  readonly v: typeof JOURNAL_VERSION;
  readonly type: 'rollout-finished';
  readonly id: string;
  readonly at: string;
  readonly outcome: string;
  readonly durationMs: number;
  readonly changed: readonly string[];
  readonly backup: string | null;
  readonly verdict: string;
}

/** One line of the journal. */
export type JournalRecord = RolloutStarted | RolloutFinished | RolloutStep;

const TYPES = new Set(['rollout-started', 'rollout-finished', 'rollout-step']);

/** What reading the journal found. */
export interface JournalRead {
  readonly records: readonly JournalRecord[];
  /** Line numbers that could not be read (a torn last line after a crash), skipped. */
  readonly skippedLines: readonly number[];
}

/** The journal file in a state folder. */
export function journalFile(stateDir: string): string {
  return path.join(stateDir, 'journal.jsonl');
}

/** sha256 of the plan files' contents, the plan's identity in the journal. */
export function planHash(files: readonly string[], read: (f: string) => Buffer = (f) => readFileSync(f)): string {
  const h = createHash('sha256');
  for (const f of files) h.update(read(f));
  return h.digest('hex');
}

/** Appends one record as one line, flushed to disk before it returns. */
export async function appendRecord(file: string, record: JournalRecord): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const handle = await fs.open(file, 'a+', 0o600);
  try {
    // A line that a crash tore is left as it is; starting on a new line keeps this one readable.
    const { size } = await handle.stat();
    const prefix = size > 0 && !(await endsWithNewline(handle, size)) ? '\n' : '';
    await handle.write(`${prefix}${JSON.stringify(record)}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function endsWithNewline(handle: fs.FileHandle, size: number): Promise<boolean> {
  const buf = Buffer.alloc(1);
  await handle.read(buf, 0, 1, size - 1);
  return buf[0] === 0x0a;
}

/** Whether a parsed line has what its readers use (a line can be JSON and still be cut short or hand-edited). */
function wellFormed(r: JournalRecord): boolean {
  const str = (v: unknown) => typeof v === 'string';
  if (r.type === 'rollout-started') return str(r.at) && str(r.user) && str(r.host) && typeof r.pid === 'number' && str(r.project) && Array.isArray(r.plan) && r.plan.every(str) && str(r.planHash);
  if (r.type === 'rollout-finished') return str(r.outcome) && typeof r.durationMs === 'number' && Array.isArray(r.changed);
  return r.step === 'backup' ? str(r.backup) : str(r.service);
}

/** Parses journal text; unreadable lines are skipped and reported, the others stay readable. */
export function parseJournal(text: string): JournalRead {
  const records: JournalRecord[] = [];
  const skipped: number[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      const r = JSON.parse(line) as JournalRecord;
      if (r && TYPES.has(r.type) && typeof r.id === 'string' && wellFormed(r)) records.push(r);
      else skipped.push(i + 1);
    } catch {
      skipped.push(i + 1);
    }
  });
  return { records, skippedLines: skipped };
}

/** Reads the journal of a state folder (empty when there is none yet). */
export async function readJournal(stateDir: string): Promise<JournalRead> {
  let text: string;
  try {
    text = await fs.readFile(journalFile(stateDir), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { records: [], skippedLines: [] };
    throw new PreflightError(`Cannot read the journal ${journalFile(stateDir)}: ${(err as NodeJS.ErrnoException).code === 'ENOTDIR' ? `${stateDir} is not a folder` : (err as Error).message}. Pass --state-dir to use another state folder.`, { cause: err });
  }
  return parseJournal(text);
}

/** One rollout as `history` shows it. */
export interface RolloutEntry {
  readonly started: RolloutStarted;
  readonly finished: RolloutFinished | undefined;
  /** The backup it wrote (the last one recorded), if it got that far. */
  readonly backup: string | undefined;
  /** Services it started to change, in order (the last change of each). */
  readonly changing: ReadonlyArray<{ readonly service: string; readonly change: 'updated' | 'created' | 'retired' }>;
  /** Of those, the ones it began and never saw through (healthy and monitored, or removed): in flight when it stopped. */
  readonly inFlight: readonly string[];
}

/** Pairs start, step and finish records, oldest first. */
export function rollouts(records: readonly JournalRecord[]): RolloutEntry[] {
  const finished = new Map(records.filter((r): r is RolloutFinished => r.type === 'rollout-finished').map((r) => [r.id, r]));
  const steps = new Map<string, RolloutStep[]>();
  for (const r of records) if (r.type === 'rollout-step') steps.set(r.id, [...(steps.get(r.id) ?? []), r]);
  return records
    .filter((r): r is RolloutStarted => r.type === 'rollout-started')
    .map((s) => {
      const own = steps.get(s.id) ?? [];
      const changing = new Map<string, 'updated' | 'created' | 'retired'>();
      const inFlight = new Set<string>();
      let backup: string | undefined;
      for (const st of own) {
        if (st.step === 'backup') backup = st.backup;
        else if (st.step === 'done') inFlight.delete(st.service);
        else {
          changing.delete(st.service);
          changing.set(st.service, st.change);
          inFlight.add(st.service);
        }
      }
      return { started: s, finished: finished.get(s.id), backup, changing: [...changing].map(([service, change]) => ({ service, change })), inFlight: [...inFlight] };
    });
}

/** Outcome of a rollout stopped safely because the engine stopped answering: resumable. */
export const ENGINE_LOST = 'engine-lost';

/** Outcomes after which every service is on one config (old or new), so an earlier unfinished rollout is settled. */
const SETTLING = new Set(['succeeded', 'rolled-back', 'interrupted', 'restored']);

/** Whether a started rollout's process is gone without a finish record (killed, or the machine went down). */
export function isUnfinished(entry: RolloutEntry): boolean {
  if (entry.finished) return false;
  if (entry.started.host !== os.hostname()) return false;
  return !processAlive(entry.started.pid, entry.started.boot);
}

/** This boot of the host (Linux): a pid recorded in an earlier boot names no process of ours, whatever runs under it now. */
export function bootId(): string | undefined {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Whether a process of this host runs (EPERM: it does, as another user); never when it was recorded in another boot. */
export function processAlive(pid: number, boot?: string): boolean {
  if (boot && bootId() && boot !== bootId()) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Rollouts that left the fleet part old, part new and that nothing settled since: killed (no finish record and its
 * process gone) or stopped because the engine went away; settled by a later rollout, resume or rollback of the same
 * project that ended with every service on one config. Oldest first.
 */
export function openRollouts(entries: readonly RolloutEntry[], project?: string): RolloutEntry[] {
  const open: RolloutEntry[] = [];
  entries.forEach((e, i) => {
    if (project && e.started.project !== project) return;
    if ((e.started.kind ?? 'rollout') !== 'rollout') return;
    if (!(isUnfinished(e) || e.finished?.outcome === ENGINE_LOST)) return;
    const settled = entries.slice(i + 1).some((l) => l.started.project === e.started.project && l.finished && SETTLING.has(l.finished.outcome));
    if (!settled) open.push(e);
  });
  return open;
}

/** Who runs this process, for the journal. */
export function whoAmI(): { user: string; host: string; pid: number; boot?: string } {
  const boot = bootId();
  return { user: os.userInfo().username, host: os.hostname(), pid: process.pid, ...(boot ? { boot } : {}) };
}

/** What a rollout records while it runs (the executor's view of the journal). */
export type StepRecord =
  | { readonly step: 'backup'; readonly backup: string }
  | { readonly step: 'changing'; readonly service: string; readonly change: 'updated' | 'created' | 'retired' }
  | { readonly step: 'done'; readonly service: string };

/** An open journal entry: the start is written when it is begun, `step` records progress, `finish` writes the end. */
export interface JournalEntry {
  readonly id: string;
  step(record: StepRecord): Promise<void>;
  finish(end: Omit<RolloutFinished, 'v' | 'type' | 'id' | 'at'>): Promise<void>;
}

/** A new entry id: sortable time and the pid. */
export function newEntryId(): string {
  return `${new Date().toISOString().replace(/[-:.]/g, '')}-${process.pid}`;
}

/** Writes the start record of a rollout (or rollback) of `project` to `files`, and returns the handle to go on with it. */
export async function beginEntry(
  stateDir: string,
  project: string,
  files: readonly string[],
  extra: { readonly id?: string; readonly kind?: 'rollout' | 'rollback'; readonly resumes?: string | undefined } = {},
): Promise<JournalEntry> {
  const file = journalFile(stateDir);
  const id = extra.id ?? newEntryId();
  await appendRecord(file, {
    v: JOURNAL_VERSION,
    type: 'rollout-started',
    id,
    at: new Date().toISOString(),
    ...whoAmI(),
    project,
    plan: files,
    planHash: planHash(files),
    kind: extra.kind ?? 'rollout',
    ...(extra.resumes ? { resumes: extra.resumes } : {}),
  });
  return {
    id,
    step: (r) => appendRecord(file, { v: JOURNAL_VERSION, type: 'rollout-step', id, at: new Date().toISOString(), ...r }),
    finish: (end) => appendRecord(file, { v: JOURNAL_VERSION, type: 'rollout-finished', id, at: new Date().toISOString(), ...end }),
  };
}
