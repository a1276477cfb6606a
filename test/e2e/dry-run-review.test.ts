// The reviewer's dry run against a real fleet: the original twin runs, the optimized twin is the target.
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, FIXTURE_SECRET, inspectProject, OPTIMIZED, ORIGINAL, useFleet } from './helpers.js';

/** Every file under a folder (none when it does not exist). */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
}

describe('rollout --dry-run --output markdown|json on a running fleet', () => {
  const fleet = useFleet(ORIGINAL, 65);

  it('shows the right services and changes, and changes nothing', async () => {
    const before = await inspectProject(fleet.project);
    expect(before.size).toBe(12);
    const args = ['rollout', OPTIMIZED, '--project', fleet.project, '--dry-run', '--state-dir', fleet.state];

    const md = await cli([...args, '--output', 'markdown'], fleet.env);
    expect(md.exitCode, md.stderr).toBe(0);
    const lines = md.stdout.split('\n');
    expect(lines[0]).toBe(`## arena-deploy rollout dry run: ${fleet.project}`);
    // The tally depends on this machine's host (the engine's), the services do not.
    expect(lines[2]).toMatch(/^\*\*6 web services updated one at a time \(web-1…web-6\), 4 retired \(web-7…web-10\), nginx recreated, redis unchanged; 0 errors, \d+ warnings?(, \d+ notes?)?\*\*$/);
    // Online: compose's own verdict decides what changed, the engine named.
    expect(md.stdout).toMatch(/^> Read from the engine at unix:\/\/\S+: which services change is compose's own verdict/m);
    expect(md.stdout).toContain('| web-1…web-6 | recreate, rolled |');
    expect(md.stdout).toContain('| web-7…web-10 | retire |');
    expect(md.stdout).toContain('| redis | keep (no change) | no change |');
    expect(md.stdout).toContain('| workers | `12` | `4` |');
    expect(md.stdout).toContain('| threads | `6` | `4` |');
    expect(md.stdout).toContain('| health check timeout | `10s` | `30s` |');
    expect(md.stdout).toContain('| env ARENA\\_REVISION | `original` | `optimized` |');
    expect(md.stdout).toContain('4. drain web-1 from nginx (where a conf routes to it) → recreate web-1 → wait healthy');
    // Host facts online are the engine's own.
    expect(md.stdout).toMatch(/- \*\*Host:\*\* \d+ vCPUs, \d+ MB memory, \d+ MB kept in reserve \(from the engine\)/);
    // Nothing but the markdown on stdout; the fixture's secret (its arena.env) nowhere.
    expect(md.stdout.trimEnd().endsWith('<sub>arena-deploy dry run, report version 1.</sub>')).toBe(true);
    expect(md.stdout + md.stderr).not.toContain(FIXTURE_SECRET);

    const json = await cli([...args, '--output', 'json'], fleet.env);
    expect(json.exitCode, json.stderr).toBe(0);
    expect(json.stdout.trimEnd().split('\n')).toHaveLength(1);
    const report = JSON.parse(json.stdout) as { kind: string; mode: string; changedBy: string; engine: string; services: { service: string; role: string }[] };
    expect(report).toMatchObject({ kind: 'dry-run', mode: 'online', changedBy: 'compose' });
    expect(report.engine).toMatch(/^unix:\/\//);
    expect(report.services.map((s) => `${s.service}:${s.role}`)).toEqual([
      'nginx:other', 'redis:unchanged',
      'web-1:rolled', 'web-2:rolled', 'web-3:rolled', 'web-4:rolled', 'web-5:rolled', 'web-6:rolled',
      'web-7:retired', 'web-8:retired', 'web-9:retired', 'web-10:retired',
    ]);
    expect(json.stdout).not.toContain(FIXTURE_SECRET);

    // Nothing changed: the same containers, no backup, no lock, no journal.
    const after = await inspectProject(fleet.project);
    expect([...after.entries()].map(([s, c]) => `${s}=${c.Id}`).sort()).toEqual([...before.entries()].map(([s, c]) => `${s}=${c.Id}`).sort());
    expect(filesUnder(fleet.state)).toEqual([]);
  }, 300_000);
});
