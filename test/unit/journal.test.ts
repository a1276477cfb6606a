import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, appendFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { appendRecord, journalFile, parseJournal, planHash, readJournal, rollouts, isUnfinished, openRollouts, JOURNAL_VERSION, type RolloutStarted } from '../../src/rollout/journal.js';

const started = (id: string, pid = process.pid): RolloutStarted => ({ v: JOURNAL_VERSION, type: 'rollout-started', id, at: '2026-12-03T10:00:00.000Z', user: 'ops', host: os.hostname(), pid, project: 'arena', plan: ['/p/a.yml'], planHash: 'ab'.repeat(32) });

describe('the journal', () => {
  it('survives a torn last line: earlier lines stay readable, the torn one is reported, the next record starts a new line', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'journal-'));
    await appendRecord(journalFile(dir), started('r1'));
    appendFileSync(journalFile(dir), '{"v":1,"type":"rollout-fini');
    await appendRecord(journalFile(dir), started('r2'));
    const read = await readJournal(dir);
    expect(read.records.map((r) => r.id)).toEqual(['r1', 'r2']);
    expect(read.skippedLines).toEqual([2]);
    expect(readFileSync(journalFile(dir), 'utf8').split('\n')).toHaveLength(4);
  });
  it('pairs starts with finishes and sees a rollout whose process is gone', () => {
    const { records } = parseJournal(
      [JSON.stringify(started('r1', 2 ** 22 + 12345)), JSON.stringify(started('r2')), JSON.stringify({ v: 1, type: 'rollout-finished', id: 'r2', at: 'x', outcome: 'succeeded', durationMs: 5, changed: ['web-1'], backup: null, verdict: 'ok' })].join('\n'),
    );
    const list = rollouts(records);
    expect(list.map((e) => [e.started.id, e.finished?.outcome])).toEqual([['r1', undefined], ['r2', 'succeeded']]);
    expect(isUnfinished(list[0]!)).toBe(true);
    expect(isUnfinished(list[1]!)).toBe(false);
  });
  it('hashes the plan files in order', () => {
    const files: Record<string, string> = { a: 'one', b: 'two' };
    const read = (f: string) => Buffer.from(files[f]!);
    expect(planHash(['a', 'b'], read)).not.toBe(planHash(['b', 'a'], read));
    // sha256("onetwo")
    expect(planHash(['a', 'b'], read)).toBe(createHash('sha256').update('onetwo').digest('hex'));
  });

  it('an unfinished rollout stays open until a later run of the project settles it; steps say its backup and what it changed', () => {
    const dead = 2 ** 22 + 4321;
    const step = (id: string, r: object) => JSON.stringify({ v: 1, type: 'rollout-step', id, at: 'x', ...r });
    const fin = (id: string, outcome: string) => JSON.stringify({ v: 1, type: 'rollout-finished', id, at: 'x', outcome, durationMs: 1, changed: [], backup: null, verdict: '' });
    const lines = [
      JSON.stringify(started('killed', dead)),
      step('killed', { step: 'backup', backup: '/b/1' }),
      step('killed', { step: 'changing', service: 'web-1', change: 'updated' }),
      step('killed', { step: 'changing', service: 'web-2', change: 'updated' }),
      JSON.stringify({ ...started('other-project', dead), project: 'other' }),
      JSON.stringify(started('lost', dead)),
      fin('lost', 'engine-lost'),
    ];
    let entries = rollouts(parseJournal(lines.join('\n')).records);
    expect(entries[0]).toMatchObject({ backup: '/b/1', changing: [{ service: 'web-1', change: 'updated' }, { service: 'web-2', change: 'updated' }] });
    expect(openRollouts(entries, 'arena').map((e) => e.started.id)).toEqual(['killed', 'lost']);
    // A failed rollback does not settle it; a restore does (for both).
    lines.push(JSON.stringify({ ...started('rb1'), kind: 'rollback' }), fin('rb1', 'restore-failed'));
    entries = rollouts(parseJournal(lines.join('\n')).records);
    expect(openRollouts(entries, 'arena').map((e) => e.started.id)).toEqual(['killed', 'lost']);
    lines.push(JSON.stringify({ ...started('rb2'), kind: 'rollback' }), fin('rb2', 'restored'));
    entries = rollouts(parseJournal(lines.join('\n')).records);
    expect(openRollouts(entries, 'arena')).toEqual([]);
    expect(openRollouts(entries).map((e) => e.started.id)).toEqual(['other-project']);
  });
});
