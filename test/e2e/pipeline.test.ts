/** End to end for pipelines and terminals: --output json, GITHUB_STEP_SUMMARY, the terminal question, colours, status --watch. */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { cli, inspectProject, root, startCli, useFleet } from './helpers.js';

const PIPELINE = path.join(root, 'fixtures', 'compose', 'pipeline');
const CURRENT = path.join(PIPELINE, 'current.yml');
const TARGET = path.join(PIPELINE, 'target.yml');
const BROKEN = path.join(PIPELINE, 'broken-unhealthy.yml');
/** The values current.yml and target.yml plant under API_TOKEN: no output may show either. */
const SECRETS = ['pipeline-planted-secret-7f3a', 'pipeline-planted-secret-new-9c2b'];
const expectNoSecret = (...outputs: string[]) => {
  for (const out of outputs) for (const s of SECRETS) expect(out).not.toContain(s);
};
/** Any ANSI escape sequence, and the colour ones (SGR) among them. */
const ESC = '\u001b';
const SGR = new RegExp(`${ESC}\\[[0-9;]*m`);
const BIN = path.join(root, 'bin', 'arena-deploy');

type Json = Record<string, unknown>;

function ndjson(stdout: string): Json[] {
  const lines = stdout.split('\n').filter(Boolean);
  return lines.map((l, i) => {
    try {
      return JSON.parse(l) as Json;
    } catch {
      throw new Error(`stdout line ${i + 1} is not JSON: ${l}`);
    }
  });
}

/** The environment of a run at a terminal: no CI (which picks the plain renderer), a real TERM. Passed with extendEnv: false, or execa would add back the CI of the test run itself. */
function terminalEnv(env: Record<string, string>, extra: Record<string, string> = {}): Record<string, string> {
  const out: Record<string, string> = { ...env, TERM: 'xterm-256color' };
  delete out['CI'];
  delete out['NO_COLOR'];
  delete out['FORCE_COLOR'];
  delete out['GITHUB_STEP_SUMMARY'];
  return { ...out, ...extra };
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * Runs the CLI on a pseudo-terminal (util-linux `script`), `input` typed on it. The pty `script` makes has no size when
 * its own stdin is a pipe, so the command sets one first. Returns what the terminal showed (stdout and stderr merged).
 */
async function onTerminal(args: readonly string[], env: Record<string, string>, input: string, stdoutTo?: string) {
  const command = `stty cols 160 rows 50; exec ${['node', BIN, ...args].map(quote).join(' ')}${stdoutTo ? ` > ${quote(stdoutTo)}` : ''}`;
  const r = await execa('script', ['-qfec', command, '/dev/null'], { env, extendEnv: false, input, reject: false, timeout: 300_000, cwd: root });
  return { exitCode: r.exitCode, screen: String(r.stdout) };
}

function backupsOf(state: string, project: string): string[] {
  const dir = path.join(state, 'backups', project);
  return existsSync(dir) ? readdirSync(dir) : [];
}

function containerIds(fleet: Map<string, { Id: string }>): Record<string, string> {
  return Object.fromEntries([...fleet].map(([s, c]) => [s, c.Id]));
}

describe('rollout for pipelines and terminals', () => {
  const { project, env, state } = useFleet(CURRENT, 66);

  it('--output json without a terminal: one JSON event per line on stdout, the final report last, plain timestamped progress on stderr, a summary appended to GITHUB_STEP_SUMMARY', async () => {
    const summary = path.join(state, 'step-summary.md');
    writeFileSync(summary, '# Earlier step\n\nkept as it was\n');
    const r = await cli(['rollout', TARGET, '--project', project, '--state-dir', state, '--output', 'json'], { ...env, GITHUB_STEP_SUMMARY: summary });
    expect(r.exitCode, r.stderr).toBe(0);
    const events = ndjson(r.stdout);
    const id = events[0]?.['rollout'];
    expect(id).toMatch(/^\d{8}T\d{9}Z-\d+$/);
    for (const e of events) {
      expect(e['version']).toBe(1);
      expect(e['rollout']).toBe(id);
      expect(typeof e['type']).toBe('string');
      expect(new Date(e['time'] as string).toISOString()).toBe(e['time']);
    }
    const steps = (type: string) => events.filter((e) => e['type'] === type).map((e) => `${e['step']}${e['service'] ? ` ${e['service']}` : ''}`);
    const started = steps('step-started');
    for (const s of ['validate', 'preflight', 'backup', 'recreate web-1', 'wait-healthy web-1', 'monitor web-1', 'recreate web-2', 'wait-healthy web-2', 'monitor web-2', 'verify']) expect(started).toContain(s);
    expect(steps('step-finished')).toEqual(started);
    // The drain is a step of its own; this fleet has no nginx, and the event says so.
    expect(started.indexOf('drain web-1')).toBeLessThan(started.indexOf('recreate web-1'));
    expect(events.find((e) => e['type'] === 'step-finished' && e['step'] === 'drain' && e['service'] === 'web-1')?.['message']).toBe('no nginx conf of the current plan routes to it');
    expect(events.filter((e) => e['type'] === 'step-finished').every((e) => e['status'] === 'ok' && typeof e['durationMs'] === 'number')).toBe(true);
    // One at a time: web-2 is recreated only after web-1 passed its monitor window.
    expect(started.indexOf('recreate web-2')).toBeGreaterThan(started.indexOf('monitor web-1'));

    const after = await inspectProject(project);
    for (const service of ['web-1', 'web-2']) {
      const health = events.filter((e) => e['type'] === 'health' && e['service'] === service);
      expect(health.map((e) => e['to'])).toEqual(['starting', 'healthy']);
      // The container in the events is the one that runs now.
      expect(health.every((e) => e['container'] === after.get(service)?.Id)).toBe(true);
    }
    expect(events.some((e) => e['type'] === 'warning' && /max-requests-jitter/.test(e['message'] as string))).toBe(true);

    const report = events[events.length - 1] as Json;
    expect(report).toMatchObject({ type: 'report', version: 1, command: 'rollout', outcome: 'succeeded', exitCode: 0, project, engine: 'unix:///var/run/docker.sock', failure: null, rollbackErrors: [] });
    expect(report['verdict']).toBe(`Rolled out ${project}: web-1, web-2 on the new config.`);
    expect(report['plan']).toEqual({ files: [{ path: TARGET, sha256: createHash('sha256').update(readFileSync(TARGET)).digest('hex') }] });
    const services = report['services'] as Json[];
    expect(services.map((s) => [s['service'], s['result'], s['config']])).toEqual([
      ['web-1', 'updated', 'new'],
      ['web-2', 'updated', 'new'],
    ]);
    expect(services.every((s) => typeof s['timeToHealthyMs'] === 'number' && (s['change'] as string).includes('threads 2 → 3'))).toBe(true);
    expect(existsSync(report['backupDir'] as string)).toBe(true);
    expect(report['durationMs']).toBeGreaterThan(0);
    // Only one report, and it is last.
    expect(events.filter((e) => e['type'] === 'report')).toHaveLength(1);

    // stderr: the human side, plain and timestamped; the summary table went there, not to stdout.
    expect(r.stderr).not.toContain(ESC);
    const lines = r.stderr.split('\n').filter((l) => l.trim());
    for (const l of lines) expect(l).toMatch(/^\[\d\d:\d\d:\d\d\] /);
    expect(r.stderr).toMatch(/\] ✔ web-1: updated, healthy after/);
    expect(r.stderr).toContain(`Rolled out ${project}: web-1, web-2 on the new config.`);

    const md = readFileSync(summary, 'utf8');
    expect(md.startsWith('# Earlier step\n\nkept as it was\n')).toBe(true);
    expect(md).toContain(`arena-deploy rollout of \`${project}\`: succeeded (exit 0)`);
    expect(md).toMatch(/\| web-1 \| threads 2 → 3.* \| \d+\.\ds \| updated \| new \|/);
    expect(md).toContain(`Backup: \`${report['backupDir'] as string}\``);
    expectNoSecret(r.stdout, r.stderr, md);
    // The secret changed: the change says so, masked.
    expect(services[0]?.['change']).toContain('env API_TOKEN [REDACTED] (old) → [REDACTED] (new)');
  }, 300_000);

  it('a rollout refused before it starts still ends with a report line: outcome and exit code', async () => {
    const r = await cli(['rollout', path.join(PIPELINE, 'no-such-plan.yml'), '--project', project, '--state-dir', state, '--output', 'json'], env);
    expect(r.exitCode).toBe(2);
    const events = ndjson(r.stdout);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ type: 'report', version: 1, outcome: 'invalid', exitCode: 2, services: [] });
    expect(events[0]?.['verdict']).toMatch(/no-such-plan\.yml/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^error: /);

    // The fleet runs the target already: nothing to do, and still a report.
    const same = await cli(['rollout', TARGET, '--project', project, '--state-dir', state, '--output', 'json'], env);
    expect(same.exitCode, same.stderr).toBe(0);
    const last = ndjson(same.stdout).pop();
    expect(last).toMatchObject({ type: 'report', outcome: 'nothing-to-do', exitCode: 0 });
  }, 300_000);

  it('on a terminal it shows the plan and asks; "n" changes nothing and exits 1', async () => {
    const before = containerIds(await inspectProject(project));
    const backups = backupsOf(state, project);
    const r = await onTerminal(['rollout', CURRENT, '--project', project, '--state-dir', state], terminalEnv(env), 'n\n');
    expect(r.exitCode, r.screen).toBe(1);
    expect(r.screen).toContain(`Rollout plan for compose project "${project}"`);
    expect(r.screen).toMatch(/recreate web-1 → wait healthy/);
    expect(r.screen).toContain(`Roll out ${project} on unix:///var/run/docker.sock? [y/N]`);
    expect(r.screen).toContain('error: Not confirmed (answer: "n"): nothing was changed.');
    expectNoSecret(r.screen);
    expect(containerIds(await inspectProject(project))).toEqual(before);
    expect(backupsOf(state, project)).toEqual(backups);
    expect(existsSync(path.join(state, 'locks', `${project}.lock`))).toBe(false);
  }, 300_000);

  it('on a terminal "y" rolls out, with the rich renderer in colour', async () => {
    const r = await onTerminal(['rollout', CURRENT, '--project', project, '--state-dir', state], terminalEnv(env), 'y\n');
    expect(r.exitCode, r.screen).toBe(0);
    expect(r.screen).toContain('[y/N]');
    expect(r.screen).toContain(`Rolled out ${project}: web-1, web-2 on the new config.`);
    expect(r.screen).toMatch(SGR);
    expectNoSecret(r.screen);
    const after = await inspectProject(project);
    expect(after.get('web-1')?.Config.Env).toContain('ARENA_REVISION=current');
  }, 300_000);

  it('--yes on a terminal does not ask; NO_COLOR=1 leaves no colour sequence in what the terminal got', async () => {
    const r = await onTerminal(['rollout', TARGET, '--project', project, '--state-dir', state, '--yes'], terminalEnv(env, { NO_COLOR: '1' }), '');
    expect(r.exitCode, r.screen).toBe(0);
    expect(r.screen).not.toContain('[y/N]');
    expect(r.screen).toContain(`Rolled out ${project}: web-1, web-2 on the new config.`);
    // The rich renderer still moves the cursor (ESC [2K, ESC [1A…); it prints no colour.
    expect(r.screen).toContain(`${ESC}[`);
    expect(r.screen).not.toMatch(SGR);
  }, 300_000);

  it('on a terminal with stdout sent to a file (--output json > file): the file holds only NDJSON, the terminal the task list', async () => {
    const file = path.join(state, 'redirected.ndjson');
    const r = await onTerminal(['rollout', CURRENT, '--project', project, '--state-dir', state, '--yes', '--output', 'json'], terminalEnv(env), '', file);
    expect(r.exitCode, r.screen).toBe(0);
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    for (const line of lines) expect(() => JSON.parse(line), line).not.toThrow();
    expect(JSON.parse(lines[lines.length - 1] as string)).toMatchObject({ type: 'report', outcome: 'succeeded', exitCode: 0 });
    // The rich task list went to the terminal (stderr): its rows and the cursor movements that redraw them.
    expect(r.screen).toMatch(/web-1: .*updated/);
    expect(r.screen).toContain(`${ESC}[`);
    // Back to the target, as the tests after this one expect.
    const back = await cli(['rollout', TARGET, '--project', project, '--state-dir', state], env);
    expect(back.exitCode, back.stderr).toBe(0);
  }, 300_000);

  it('FORCE_COLOR=1 colours the plain progress even in a pipe, and the pipe is never asked', async () => {
    const r = await cli(['rollout', CURRENT, '--project', project, '--state-dir', state], { ...env, FORCE_COLOR: '1' });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toMatch(SGR);
    expect(r.stderr).not.toContain('[y/N]');
    expect(r.stdout).not.toContain(ESC);
  }, 300_000);

  it('rollback --output json: the restore as events and a final report', async () => {
    const r = await cli(['rollback', '--project', project, '--state-dir', state, '--output', 'json'], env);
    expect(r.exitCode, r.stderr).toBe(0);
    const events = ndjson(r.stdout);
    expect(events.map((e) => `${e['type']}${e['step'] ? ` ${e['step']}` : ''}`)).toEqual(['rollout-started', 'step-started restore', 'step-finished restore', 'report']);
    expect(events[events.length - 1]).toMatchObject({ type: 'report', version: 1, command: 'rollback', outcome: 'restored', exitCode: 0, project });
    expectNoSecret(r.stdout);
  }, 300_000);

  it('a target that turns unhealthy: the failed step, the health change, the rollback step and a rolled-back report (exit 5)', async () => {
    const summary = path.join(state, 'broken-summary.md');
    writeFileSync(summary, 'earlier\n');
    const r = await cli(['rollout', BROKEN, '--project', project, '--state-dir', state, '--output', 'json'], { ...env, GITHUB_STEP_SUMMARY: summary });
    expect(r.exitCode, r.stderr).toBe(5);
    const events = ndjson(r.stdout);
    const failed = events.filter((e) => e['type'] === 'step-finished' && e['status'] === 'failed');
    expect(failed.map((e) => `${e['step']} ${e['service']}`)).toEqual(['wait-healthy web-1']);
    expect(failed[0]?.['message']).toMatch(/^web-1 became unhealthy/);
    const health = events.filter((e) => e['type'] === 'health' && e['service'] === 'web-1').map((e) => e['to']);
    expect(health).toEqual(['starting', 'unhealthy']);
    const rollback = events.filter((e) => e['step'] === 'rollback');
    expect(rollback.map((e) => `${e['type']} ${e['service']} ${e['status'] ?? ''}`.trim())).toEqual(['step-started web-1', 'step-finished web-1 ok']);
    // web-2 was never started.
    expect(events.some((e) => e['service'] === 'web-2')).toBe(false);
    const report = events[events.length - 1] as Json;
    expect(report).toMatchObject({ type: 'report', outcome: 'rolled-back', exitCode: 5, rollbackErrors: [] });
    expect(report['failure']).toMatchObject({ service: 'web-1', message: expect.stringMatching(/^web-1 became unhealthy/) });
    expect((report['failure'] as Json)['details']).toEqual(expect.arrayContaining([expect.stringMatching(/exit 22: curl: \(22\) .*404/)]));
    expect((report['services'] as Json[]).map((x) => [x['service'], x['result'], x['config']])).toEqual([
      ['web-1', 'rolled back', 'old'],
      ['web-2', 'not started', 'old'],
    ]);
    const md = readFileSync(summary, 'utf8');
    expect(md.startsWith('earlier\n')).toBe(true);
    expect(md).toContain('rolled-back (exit 5)');
    expect(md).toContain('<details><summary>Why it failed</summary>');
    expectNoSecret(r.stdout, r.stderr, md);
    expect((await inspectProject(project)).get('web-1')?.Config.Env).toContain('ARENA_REVISION=target');
  }, 300_000);

  it('SIGTERM mid-rollout: rolled back first, then the report says interrupted with exit code 143', async () => {
    const run = startCli(['rollout', CURRENT, '--project', project, '--state-dir', state, '--output', 'json'], env);
    await run.waitFor(/recreating/);
    run.kill('SIGTERM');
    const r = await run.done;
    expect(r.exitCode, r.stderr).toBe(143);
    const events = ndjson(r.stdout);
    expect(events.some((e) => e['step'] === 'rollback' && e['type'] === 'step-finished' && e['status'] === 'ok')).toBe(true);
    expect(events[events.length - 1]).toMatchObject({ type: 'report', outcome: 'interrupted', exitCode: 143 });
    expect((await inspectProject(project)).get('web-1')?.Config.Env).toContain('ARENA_REVISION=target');
  }, 300_000);
});

describe('status --watch', () => {
  const { project, env, state } = useFleet(CURRENT, 67);

  it('--output json --interval 1s: one snapshot of every service per line until SIGINT, then exit 0', async () => {
    const child = execa('node', [BIN, 'status', '--project', project, '--state-dir', state, '--watch', '--output', 'json', '--interval', '1s'], { env, reject: false, stdin: 'ignore', timeout: 120_000, cwd: root });
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const until = Date.now() + 60_000;
    while (out.split('\n').filter(Boolean).length < 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
    child.kill('SIGINT');
    const r = await child;
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const snapshots = ndjson(String(r.stdout));
    expect(snapshots.length).toBeGreaterThanOrEqual(2);
    for (const s of snapshots) {
      expect(s).toMatchObject({ type: 'snapshot', version: 1, project, healthy: true });
      const services = s['services'] as Json[];
      expect(services.map((x) => x['service'])).toEqual(['web-1', 'web-2']);
      for (const x of services) {
        expect(x).toMatchObject({ state: 'running', health: 'healthy', restartCount: 0, oomKilled: false, exitCode: 0, memoryLimitBytes: 1024 ** 3 });
        expect(x['memoryBytes']).toBeGreaterThan(0);
        expect(x['uptimeMs']).toBeGreaterThan(0);
        expect(x['cpuPercent']).toBeGreaterThanOrEqual(0);
      }
    }
    expect(Date.parse(snapshots[1]?.['time'] as string) - Date.parse(snapshots[0]?.['time'] as string)).toBeGreaterThanOrEqual(900);
    expect(String(r.stderr)).toContain('SIGINT: stopping the watch.');
    expectNoSecret(String(r.stdout));
  }, 180_000);

  it('on a terminal the table is redrawn in place', async () => {
    const command = `stty cols 200 rows 50; exec ${['node', BIN, 'status', '--project', project, '--state-dir', state, '--watch', '--interval', '1s'].map(quote).join(' ')}`;
    const child = execa('script', ['-qfec', command, '/dev/null'], { env: terminalEnv(env), extendEnv: false, reject: false, timeout: 120_000, cwd: root, input: '' });
    let screen = '';
    child.stdout?.on('data', (d: Buffer) => {
      screen += d.toString();
    });
    const until = Date.now() + 60_000;
    while (screen.split(`${ESC}[H${ESC}[2J`).length < 3 && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
    // The signal goes to the CLI, script's child, as Ctrl-C would.
    const pid = (await execa('pgrep', ['-P', String(child.pid)], { reject: false })).stdout.trim().split('\n')[0];
    if (pid) process.kill(Number(pid), 'SIGINT');
    const r = await child;
    expect(r.exitCode).toBe(0);
    const frames = String(r.stdout).split(`${ESC}[H${ESC}[2J`).slice(1);
    expect(frames.length).toBeGreaterThanOrEqual(2);
    for (const f of frames.slice(0, 2)) {
      expect(f).toMatch(/SERVICE +CONTAINER +CONFIG/);
      expect(f).toMatch(/web-1 .* running +healthy +0 +no +0 +\d+M \/ 1024M \(\d+ %\) +\d+\.\d % +\d/);
      expect(f).toContain('Ctrl-C to stop.');
    }
  }, 180_000);
});
