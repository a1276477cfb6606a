/**
 * End to end on the real engine: with the real plans' 30 s health-check interval, the tool sees a new container
 * healthy at the first answer of its health URL on the published port, not at Docker's first check 30 s later.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { inspectProject, root, startCli, useFleet } from './helpers.js';

const PIPELINE = path.join(root, 'fixtures', 'compose', 'pipeline');
const CURRENT = path.join(PIPELINE, 'current.yml');
const TARGET = path.join(PIPELINE, 'target.yml');

/** The NDJSON events a `--output json` rollout wrote on stdout. */
function eventsOf(stdout: string): Array<Record<string, unknown>> {
  return stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Docker's health probes of a container, with when each started. */
function dockerProbes(c: { State: { Health?: { Log?: Array<{ Start: string; ExitCode: number }> } } }): Array<{ at: number; exitCode: number }> {
  return (c.State.Health?.Log ?? []).map((p) => ({ at: Date.parse(p.Start), exitCode: p.ExitCode }));
}

describe('health: the published health URL is probed beside Docker\'s status', () => {
  const { project, env, state } = useFleet(CURRENT, 64);

  it('with a 30 s interval, each new container counts as healthy by its /health/ answer, before Docker ran a passing check', async () => {
    // The target with the real plan's health-check interval: Docker's first check of a new container comes 30 s after its start.
    const slowChecks = path.join(state, 'interval-30s.yml');
    writeFileSync(slowChecks, `services:\n${['web-1', 'web-2'].map((s) => `  ${s}:\n    healthcheck:\n      interval: 30s\n`).join('')}`);
    const run = startCli(['rollout', TARGET, slowChecks, '--project', project, '--state-dir', state, '--output', 'json'], env, 300_000);
    const r = await run.done;
    expect(r.exitCode, r.stderr).toBe(0);
    const healthy = eventsOf(r.stdout).filter((e) => e['type'] === 'health' && e['to'] === 'healthy');
    expect(healthy.map((e) => [e['service'], e['via']])).toEqual([
      ['web-1', 'probe'],
      ['web-2', 'probe'],
    ]);
    expect(r.stderr).toMatch(/web-1: updated, healthy after [0-9.]+s \(http:\/\/127\.0\.0\.1:6401\/health\/ answered\)/);
    expect(r.stderr).toMatch(/web-2: updated, healthy after [0-9.]+s \(http:\/\/127\.0\.0\.1:6402\/health\/ answered\)/);
    const now = await inspectProject(project);
    for (const e of healthy) {
      const c = now.get(e['service'] as string)!;
      expect(c.Id).toBe(e['container']);
      // Docker had not yet passed a check of this container when the tool called it healthy.
      const saidAt = Date.parse(e['time'] as string);
      const passed = dockerProbes(c).filter((p) => p.exitCode === 0);
      for (const p of passed) expect(p.at, `Docker passed a check of ${e['service']} at ${new Date(p.at).toISOString()}, the tool said healthy at ${e['time']}`).toBeGreaterThan(saidAt);
    }
  }, 360_000);

  it('--no-probe waits for Docker\'s own status: the tool says healthy only after Docker passed a check', async () => {
    const next = path.join(state, 'next.yml');
    writeFileSync(next, 'services:\n  web-1:\n    environment:\n      - ARENA_REVISION=next\n    healthcheck:\n      interval: 30s\n  web-2:\n    healthcheck:\n      interval: 30s\n');
    const slowChecks = path.join(state, 'interval-30s.yml');
    const run = startCli(['rollout', TARGET, slowChecks, next, '--project', project, '--state-dir', state, '--output', 'json', '--no-probe', '--services', 'web-1'], env, 300_000);
    const r = await run.done;
    expect(r.exitCode, r.stderr).toBe(0);
    const healthy = eventsOf(r.stdout).filter((e) => e['type'] === 'health' && e['to'] === 'healthy');
    expect(healthy.map((e) => [e['service'], e['via']])).toEqual([['web-1', 'docker']]);
    expect(r.stderr).not.toContain('answered)');
    const c = (await inspectProject(project)).get('web-1')!;
    const firstPass = dockerProbes(c).find((p) => p.exitCode === 0);
    expect(firstPass, 'Docker passed a check').toBeDefined();
    expect(firstPass!.at).toBeLessThanOrEqual(Date.parse(healthy[0]!['time'] as string));
  }, 360_000);
});
