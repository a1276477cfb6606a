import { execFileSync } from 'node:child_process';
/** Unit tests of the pipeline outputs: colour decision, the question, NDJSON events and report, step summary, timestamps. */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PassThrough } from 'node:stream';
import { applyColorDecision, colorEnabled } from '../../src/cli/color.js';
import { confirm, isYes, shouldConfirm } from '../../src/cli/confirm.js';
import { CancelledError, DeclinedError, LockError, PlanError, RollbackFailedError, UsageError, ValidationError } from '../../src/errors.js';
import { timedStep, type RolloutEventBody } from '../../src/report/events.js';
import { exitCodeOfError, exitCodeOfOutcome, outcomeOfError, reportOf, reportOfResult, type FinalReport } from '../../src/report/json-report.js';
import { renderStepSummary } from '../../src/report/step-summary.js';
import { appendStepSummary, NdjsonWriter, planFileSums } from '../../src/cli/report-output.js';
import { timestampLines } from '../../src/cli/timestamp-lines.js';
import { redactText } from '../../src/util/redact.js';
import type { RolloutResult } from '../../src/rollout/execute-rollout.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'arena-deploy-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('colorEnabled', () => {
  it.each([
    [{}, true, true],
    [{}, false, false],
    [{ TERM: 'dumb' }, true, false],
    [{ NO_COLOR: '1' }, true, false],
    [{ NO_COLOR: 'yes' }, true, false],
    // Empty NO_COLOR does not count (no-color.org: "present and not an empty string").
    [{ NO_COLOR: '' }, true, true],
    [{ FORCE_COLOR: '1' }, false, true],
    [{ FORCE_COLOR: '2' }, false, true],
    [{ FORCE_COLOR: '3' }, false, true],
    [{ FORCE_COLOR: '' }, false, true],
    [{ FORCE_COLOR: '0' }, true, false],
    [{ FORCE_COLOR: 'false' }, true, false],
    [{ FORCE_COLOR: 'maybe' }, false, false],
    [{ NO_COLOR: '1', FORCE_COLOR: '1' }, true, false],
    [{ CI: 'true', GITHUB_ACTIONS: 'true' }, false, false],
  ] as Array<[Record<string, string>, boolean, boolean]>)('%j with a terminal %s → %s', (env, tty, want) => {
    expect(colorEnabled(env, tty)).toBe(want);
  });

  it('puts the decision in the environment the way colorette reads it (presence of NO_COLOR / FORCE_COLOR)', () => {
    const off: NodeJS.ProcessEnv = { FORCE_COLOR: '0' };
    expect(applyColorDecision(off, true)).toBe(false);
    expect(off).toEqual({ NO_COLOR: '1' });
    const on: NodeJS.ProcessEnv = { NO_COLOR: '', FORCE_COLOR: '' };
    expect(applyColorDecision(on, false)).toBe(true);
    expect(on).toEqual({ FORCE_COLOR: '1' });
    const level: NodeJS.ProcessEnv = { FORCE_COLOR: '3' };
    applyColorDecision(level, false);
    expect(level).toEqual({ FORCE_COLOR: '3' });
  });
});

describe('the question', () => {
  it('is asked only at a terminal (stdin and stderr), never with --yes', () => {
    expect(shouldConfirm({ yes: false, stdinIsTTY: true, stderrIsTTY: true })).toBe(true);
    expect(shouldConfirm({ yes: true, stdinIsTTY: true, stderrIsTTY: true })).toBe(false);
    expect(shouldConfirm({ yes: false, stdinIsTTY: false, stderrIsTTY: true })).toBe(false);
    expect(shouldConfirm({ yes: false, stdinIsTTY: true, stderrIsTTY: false })).toBe(false);
  });

  it.each([
    ['y', true],
    ['Y', true],
    [' yes ', true],
    ['YES', true],
    ['', false],
    ['n', false],
    ['no', false],
    ['yess', false],
    ['sure', false],
  ])('answer %j is a yes: %s', (a, want) => {
    expect(isYes(a)).toBe(want);
  });

  const ask = async (typed: string | undefined, abort = false) => {
    const input = new PassThrough();
    const shown: string[] = [];
    const ctl = new AbortController();
    const p = confirm(input, { write: (s: string) => shown.push(s) }, 'Roll out? [y/N] ', ctl.signal);
    if (abort) ctl.abort('SIGINT');
    else if (typed === undefined) input.end();
    else input.write(typed);
    try {
      await p;
      return { ok: true, shown };
    } catch (err) {
      return { ok: false, err, shown };
    }
  };

  it('a "y" line goes on; anything else, or the end of input, is DeclinedError (exit 1) saying nothing was changed', async () => {
    expect(await ask('y\n')).toEqual({ ok: true, shown: ['Roll out? [y/N] '] });
    const no = await ask('nope\n');
    expect(no.err).toBeInstanceOf(DeclinedError);
    expect((no.err as DeclinedError).exitCode).toBe(1);
    expect((no.err as Error).message).toBe('Not confirmed (answer: "nope"): nothing was changed.');
    expect((await ask(undefined)).err).toBeInstanceOf(DeclinedError);
  });

  it('a signal at the question is an interrupt, not a no', async () => {
    const r = await ask(undefined, true);
    expect(r.err).toBeInstanceOf(CancelledError);
    expect((r.err as Error).message).toContain('nothing was changed');
  });
});

describe('events and the final report', () => {
  it('timedStep emits started and finished (ok with a message, or failed with the error) and passes the value or error through', async () => {
    const seen: RolloutEventBody[] = [];
    let t = 100;
    const now = () => (t += 5);
    expect(await timedStep((e) => seen.push(e), now, { step: 'backup' }, async () => '/b/1', (d) => d)).toBe('/b/1');
    await expect(timedStep((e) => seen.push(e), now, { step: 'recreate', service: 'web-1' }, async () => Promise.reject(new Error('compose failed')))).rejects.toThrow('compose failed');
    expect(seen).toEqual([
      { type: 'step-started', step: 'backup' },
      { type: 'step-finished', step: 'backup', status: 'ok', durationMs: 5, message: '/b/1' },
      { type: 'step-started', step: 'recreate', service: 'web-1' },
      { type: 'step-finished', step: 'recreate', service: 'web-1', status: 'failed', durationMs: 5, message: 'compose failed' },
    ]);
    // No sink: the step just runs.
    expect(await timedStep(undefined, now, { step: 'verify' }, async () => 7)).toBe(7);
  });

  it('writes one redacted JSON object per line with the envelope first, and only one report', () => {
    const lines: string[] = [];
    const secrets = new Set(['s3cr"et\\value']);
    const w = new NdjsonWriter({ write: (s: string) => lines.push(s) }, 'R1', (t) => redactText(t, secrets), () => new Date('2026-01-02T03:04:05.678Z'));
    w.sink({ type: 'warning', message: 'API_TOKEN is s3cr"et\\value here' });
    const report = reportOf('R1', { command: 'rollout', project: 'p' }, { outcome: 'refused', verdict: 'Lock held by s3cr"et\\value.', exitCode: 4, durationMs: 3 });
    w.report(report);
    w.report(report);
    expect(lines).toHaveLength(2);
    expect(lines.every((l) => l.endsWith('\n') && !l.slice(0, -1).includes('\n'))).toBe(true);
    expect(lines[0]).toBe('{"version":1,"type":"warning","time":"2026-01-02T03:04:05.678Z","rollout":"R1","message":"API_TOKEN is [REDACTED] here"}\n');
    const last = JSON.parse(lines[1] as string) as FinalReport;
    expect(last).toMatchObject({ version: 1, type: 'report', rollout: 'R1', outcome: 'refused', exitCode: 4, verdict: 'Lock held by [REDACTED].', project: 'p', plan: null });
    expect(lines.join('')).not.toContain('s3cr');
    expect(w.done).toBe(true);
  });

  it('a closed stdout drops events instead of stopping the rollout', () => {
    const w = new NdjsonWriter({ write: () => { throw Object.assign(new Error('EPIPE'), { code: 'EPIPE' }); } }, 'R', (t) => t);
    expect(() => w.sink({ type: 'warning', message: 'x' })).not.toThrow();
  });

  it('maps errors and outcomes to the CLI exit codes and report outcomes', () => {
    expect([exitCodeOfError(new UsageError('u')), outcomeOfError(new UsageError('u'))]).toEqual([2, 'invalid']);
    expect([exitCodeOfError(new PlanError('p')), outcomeOfError(new PlanError('p'))]).toEqual([2, 'invalid']);
    expect([exitCodeOfError(new ValidationError('v')), outcomeOfError(new ValidationError('v'))]).toEqual([3, 'invalid']);
    expect([exitCodeOfError(new LockError('l')), outcomeOfError(new LockError('l'))]).toEqual([4, 'refused']);
    expect([exitCodeOfError(new DeclinedError()), outcomeOfError(new DeclinedError())]).toEqual([1, 'declined']);
    expect([exitCodeOfError(new CancelledError(), 143), outcomeOfError(new CancelledError())]).toEqual([143, 'interrupted']);
    expect([exitCodeOfError(new RollbackFailedError('r')), outcomeOfError(new RollbackFailedError('r'))]).toEqual([6, 'rollback-failed']);
    expect([exitCodeOfError(new Error('bug')), outcomeOfError(new Error('bug'))]).toEqual([1, 'failed']);
    expect(['succeeded', 'rolled-back', 'rollback-failed', 'engine-lost'].map((o) => exitCodeOfOutcome(o as RolloutResult['outcome']))).toEqual([0, 5, 6, 4]);
    expect(exitCodeOfOutcome('interrupted', 129)).toBe(129);
  });

  const result: RolloutResult = {
    outcome: 'rolled-back',
    verdict: 'Rolled back: web-1: web-1 became unhealthy 3.0s after it was started. web-1 restored from the backup; every service of p is on the old config.',
    services: [
      { service: 'web-1', change: 'threads 2 → 3 | pipes', timeToHealthyMs: undefined, result: 'rolled back', config: 'old' },
      { service: 'web-2', change: 'threads 2 → 3', timeToHealthyMs: undefined, result: 'not started', config: 'old' },
    ],
    backupDir: '/state/backups/p/20260101T000000000Z',
    failure: { service: 'web-1', message: 'web-1 became unhealthy', details: ['last health probes:', '  exit 22: curl: (22) 500'] },
    rollbackErrors: [],
    durationMs: 65_000,
  };

  it('the report of a run carries the plan sums, services, backup and failure', () => {
    const file = path.join(tmp, 'target.yml');
    writeFileSync(file, 'services: {}\n');
    const r = reportOfResult('R2', result, { command: 'rollout', project: 'p', engine: 'unix:///var/run/docker.sock', planFiles: planFileSums([file, path.join(tmp, 'gone.yml')]), warnings: ['w'] }, 5, new Date('2026-01-01T00:00:00Z'));
    expect(r).toEqual({
      version: 1,
      type: 'report',
      time: '2026-01-01T00:00:00.000Z',
      rollout: 'R2',
      command: 'rollout',
      project: 'p',
      engine: 'unix:///var/run/docker.sock',
      plan: { files: [{ path: file, sha256: createHash('sha256').update('services: {}\n').digest('hex') }, { path: path.join(tmp, 'gone.yml'), sha256: null }] },
      warnings: ['w'],
      outcome: 'rolled-back',
      verdict: result.verdict,
      exitCode: 5,
      services: [
        { service: 'web-1', change: 'threads 2 → 3 | pipes', result: 'rolled back', config: 'old', timeToHealthyMs: null },
        { service: 'web-2', change: 'threads 2 → 3', result: 'not started', config: 'old', timeToHealthyMs: null },
      ],
      backupDir: '/state/backups/p/20260101T000000000Z',
      failure: { service: 'web-1', message: 'web-1 became unhealthy', details: ['last health probes:', '  exit 22: curl: (22) 500'] },
      rollbackErrors: [],
      durationMs: 65_000,
    });
  });

  it('the step summary: heading with outcome and exit code, verdict, a table whose cells cannot break it, failure details, backup, duration', () => {
    const r = reportOfResult('R3', result, { command: 'rollout', project: 'p', engine: 'unix:///var/run/docker.sock' }, 5);
    expect(renderStepSummary(r)).toBe(
      [
        '### ↩️ arena-deploy rollout of `p`: rolled-back (exit 5)',
        '',
        result.verdict,
        '',
        '| Service | Change | Healthy after | Result | Config |',
        '|---|---|---|---|---|',
        '| web-1 | threads 2 → 3 \\| pipes | - | rolled back | old |',
        '| web-2 | threads 2 → 3 | - | not started | old |',
        '',
        '<details><summary>Why it failed</summary>',
        '',
        '```',
        'last health probes:',
        '  exit 22: curl: (22) 500',
        '```',
        '',
        '</details>',
        '',
        'Engine: `unix:///var/run/docker.sock`  \nBackup: `/state/backups/p/20260101T000000000Z`  \nDuration: 1m05s',
        '',
        '',
      ].join('\n'),
    );
  });

  it('the step summary is appended, never truncating; a file that cannot be written is a warning', async () => {
    const file = path.join(tmp, 'summary.md');
    writeFileSync(file, 'before\n');
    expect(await appendStepSummary(file, 'one\n')).toBeUndefined();
    expect(await appendStepSummary(file, 'two\n')).toBeUndefined();
    expect(readFileSync(file, 'utf8')).toBe('before\none\ntwo\n');
    const dir = path.join(tmp, 'a-dir');
    mkdirSync(dir);
    expect(await appendStepSummary(dir, 'x')).toBe(`cannot append the summary to GITHUB_STEP_SUMMARY (${dir}): EISDIR.`);
    // A FIFO nobody reads: a warning at once, not an open that blocks the process for ever.
    const fifo = path.join(dir, 'summary.fifo');
    execFileSync('mkfifo', [fifo]);
    expect(await appendStepSummary(fifo, 'x')).toMatch(/^cannot append the summary to GITHUB_STEP_SUMMARY \(.*summary\.fifo\): (ENXIO|it is not a regular file)\.$/);
  });
});

describe('timestampLines', () => {
  it('starts every line with [HH:MM:SS], across partial writes, and leaves empty lines alone', () => {
    const out: string[] = [];
    const s = timestampLines({ write: (x: string) => out.push(x) }, () => new Date(2026, 0, 1, 3, 4, 5));
    s.write('one\ntw');
    s.write('o\n\nthree');
    s.write(Buffer.from('\n'));
    expect(out.join('')).toBe('[03:04:05] one\n[03:04:05] two\n\n[03:04:05] three\n');
  });
});

describe('resourceUsageOf', () => {
  it('computes memory without the inactive page cache and CPU % as docker stats does', async () => {
    const { resourceUsageOf } = await import('../../src/engine/docker-engine-client.js');
    expect(
      resourceUsageOf({
        memory_stats: { usage: 100 * 1024 ** 2, stats: { inactive_file: 20 * 1024 ** 2 } },
        cpu_stats: { cpu_usage: { total_usage: 3_000_000 }, system_cpu_usage: 120_000_000, online_cpus: 2 },
        precpu_stats: { cpu_usage: { total_usage: 1_000_000 }, system_cpu_usage: 100_000_000 },
      }),
    ).toEqual({ memoryBytes: 80 * 1024 ** 2, cpuPercent: 20 });
    // cgroup v1 name; no previous sample: no CPU figure rather than a wrong one.
    expect(resourceUsageOf({ memory_stats: { usage: 10, stats: { total_inactive_file: 4 } }, cpu_stats: { cpu_usage: { total_usage: 5 }, system_cpu_usage: 9 }, precpu_stats: {} })).toEqual({ memoryBytes: 6, cpuPercent: undefined });
    expect(resourceUsageOf({})).toBeUndefined();
  });
});

describe('redactText', () => {
  it('masks a multi-line secret (a PEM key) line by line too, and a longer secret before a shorter one it begins with', () => {
    const pem = '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkq\n-----END PRIVATE KEY-----';
    const log = ['  DEPLOY_PRIVATE_KEY=-----BEGIN PRIVATE KEY-----', '  MIIEvQIBADANBgkq', '  -----END PRIVATE KEY-----'];
    expect(log.map((l) => redactText(l, [pem]))).toEqual(['  DEPLOY_PRIVATE_KEY=[REDACTED]', '  [REDACTED]', '  [REDACTED]']);
    expect(redactText('DB_PASSWORD=hunter2-long, then hunter2', ['hunter2', 'hunter2-long'])).toBe('DB_PASSWORD=[REDACTED], then [REDACTED]');
  });
});
