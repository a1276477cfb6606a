// The reviewer's dry run (`rollout --dry-run --output markdown|json --offline`) through the real CLI entry point, with
// no engine: DOCKER_HOST points at a socket that does not exist, and docker compose (config --quiet) is the real one.
import { copyFileSync, cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main, type MainOverrides } from '../../src/cli/main.js';
import type { Context, IO } from '../../src/cli/context.js';
import type { EngineClient } from '../../src/engine/engine-client.js';
import type { ComposeClient } from '../../src/engine/compose-client.js';
import { ExecaProcessRunner } from '../../src/engine/process-runner.js';
import { DockerComposeClient } from '../../src/engine/compose-client.js';
import { systemClock } from '../../src/rollout/health-wait.js';
import { mdCode, mdText } from '../../src/report/render-dry-run-markdown.js';

const root = path.resolve(import.meta.dirname, '..', '..');
const PLANS = { current: 'plans/docker-compose.loadbalanced.yml', target: 'plans/docker-compose.loadbalanced.optimized.yml' };
const TWINS = { current: 'fixtures/compose/arena/docker-compose.loadbalanced.yml', target: 'fixtures/compose/arena/docker-compose.loadbalanced.optimized.yml' };
const NO_ENGINE = 'unix:///nonexistent/arena-deploy-no-engine.sock';

function buffer(): { stream: NodeJS.WriteStream; text: () => string } {
  const chunks: Buffer[] = [];
  const stream = new Writable({
    write(chunk: Buffer | string, _enc, cb) {
      chunks.push(Buffer.from(chunk));
      cb();
    },
  });
  return { stream: stream as unknown as NodeJS.WriteStream, text: () => Buffer.concat(chunks).toString('utf8') };
}

/** Runs the CLI in-process as a user would, without a terminal. */
async function run(args: readonly string[], opts: { cwd?: string; env?: Record<string, string>; makeContext?: MainOverrides['makeContext'] } = {}) {
  const out = buffer();
  const err = buffer();
  const io: IO = { stdout: out.stream, stderr: err.stream, stdoutIsTTY: false, stderrIsTTY: false };
  const env: Record<string, string> = { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? os.tmpdir(), DOCKER_HOST: NO_ENGINE, CI: 'true', ...opts.env };
  // An empty value in opts.env means "unset".
  for (const [k, v] of Object.entries(env)) if (v === '') delete env[k];
  // The docker and compose processes the CLI starts inherit this process's environment: it says the same.
  const saved = { DOCKER_HOST: process.env['DOCKER_HOST'], DOCKER_CONTEXT: process.env['DOCKER_CONTEXT'] };
  for (const k of Object.keys(saved)) {
    if (env[k] === undefined) delete process.env[k];
    else process.env[k] = env[k];
  }
  try {
    const code = await main(args, { io, env, cwd: opts.cwd ?? root, ...(opts.makeContext ? { makeContext: opts.makeContext } : {}) });
    return { code, stdout: out.text(), stderr: err.text() };
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

const offline = (p: { current: string; target: string }, ...extra: string[]) => ['rollout', p.target, '--current', p.current, '--dry-run', '--offline', ...extra];

describe('rollout --dry-run --offline: the reviewer\'s report, with no engine', () => {
  it('the guide\'s plans on their 16 vCPU / 64 GB host, as markdown', async () => {
    const r = await run(offline(PLANS, '--output', 'markdown', '--host-cpus', '16', '--host-memory', '64g'));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe('## arena-deploy rollout dry run: arena');
    expect(lines[2]).toBe('**6 web services updated one at a time (web-1…web-6), 4 retired (web-7…web-10), nginx recreated, redis unchanged; 0 errors, 1 warning, 1 note**');
    expect(r.stdout).toContain('Computed offline from the files');
    expect(r.stdout).toContain('| workers | `12` | `4` |');
    expect(r.stdout).toContain('| threads | `6` | `4` |');
    expect(r.stdout).toContain('| memory limit | `3072M` | `5120M` |');
    expect(r.stdout).toContain('| health check timeout | `10s` | `30s` |');
    expect(r.stdout).toContain('| concurrent handlers | 720 | 96 |');
    // nginx: what its config says, not only that another file is mounted.
    expect(r.stdout).toContain('| nginx upstream arena\\_backend servers | `10: web-1…web-10 on port 8000, max_fails=3 fail_timeout=30s` | `6: web-1…web-6 on port 8000, max_fails=3 fail_timeout=30s` |');
    expect(r.stdout).toContain('| nginx proxy\\_read\\_timeout | `arena_backend: 15m` | `arena_backend: 5m` |');
    // Errors and warnings come before the services and their changes.
    expect(r.stdout.indexOf('### Errors and warnings')).toBeLessThan(r.stdout.indexOf('### Services'));
    await expect(r.stdout).toMatchFileSnapshot('../__snapshots__/dry-run/plans.md');
  });

  it('the guide\'s plans as one JSON object with the same content', async () => {
    const r = await run(offline(PLANS, '--output', 'json', '--host-cpus', '16', '--host-memory', '64g'));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.trimEnd().split('\n')).toHaveLength(1);
    const report = JSON.parse(r.stdout) as Record<string, unknown> & { services: { service: string; role: string; changes: { field: string; from: string; to: string }[] }[] };
    expect(report).toMatchObject({ version: 1, kind: 'dry-run', mode: 'offline', changedBy: 'files', engine: null, counts: { rolled: 6, retired: 4, recreated: 1, unchanged: 1, errors: 0, warnings: 1 } });
    expect(report.services.find((s) => s.service === 'web-1')?.changes).toContainEqual({ field: 'workers', from: '12', to: '4' });
    expect(report.services.filter((s) => s.role === 'retired').map((s) => s.service)).toEqual(['web-7', 'web-8', 'web-9', 'web-10']);
    await expect(`${JSON.stringify(report, null, 2)}\n`).toMatchFileSnapshot('../__snapshots__/dry-run/plans.json');
  });

  it('the fixtures\' twins on the 2-core / 24 GB host they are sized for, as markdown and JSON', async () => {
    const md = await run(offline(TWINS, '--output', 'markdown', '--host-cpus', '2', '--host-memory', '24g'));
    expect(md.code).toBe(0);
    expect(md.stdout).toContain('| env ARENA\\_REVISION | `original` | `optimized` |');
    await expect(md.stdout).toMatchFileSnapshot('../__snapshots__/dry-run/twins.md');
    const json = await run(offline(TWINS, '--output', 'json', '--host-cpus', '2', '--host-memory', '24g'));
    expect(json.code).toBe(0);
    await expect(`${JSON.stringify(JSON.parse(json.stdout), null, 2)}\n`).toMatchFileSnapshot('../__snapshots__/dry-run/twins.json');
  });

  it('without host facts the host rules are skipped, and the report says so', async () => {
    const r = await run(offline(TWINS, '--output', 'markdown'));
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('- **Host:** unknown: offline, and no --host-cpus/--host-memory nor x-arena-deploy.host: host rules skipped');
  });

  it('a docker context that does not exist does not stop it: compose\'s own check is listed as not done', async () => {
    const r = await run(offline(TWINS, '--output', 'markdown'), { env: { DOCKER_HOST: '', DOCKER_CONTEXT: 'arena-deploy-test-no-such-context' } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^> Not checked offline: .*; docker compose config --quiet of the target \(compose cannot start here: unable to resolve docker endpoint: context "arena-deploy-test-no-such-context": context not found\)\.$/m);
  });

  it('the original plan as the target: the markdown is printed, then exit 3 with one sentence', async () => {
    const r = await run(['rollout', PLANS.current, '--current', PLANS.target, '--dry-run', '--offline', '--output', 'markdown', '--host-cpus', '16', '--host-memory', '64g']);
    expect(r.code).toBe(3);
    expect(r.stdout).toContain('| 🛑 error | `memory-overcommit` | web-1…web-10 |');
    expect(r.stdout).toMatch(/; 10 errors|; 1 error/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^error: The target plan would fail on a host of 16 vCPUs: web-1 needs about 4000 MB/);
  });

  it('asks nothing of the engine and runs no compose command but config --quiet', async () => {
    const engineCalls: string[] = [];
    const composeCalls: string[] = [];
    const engine = new Proxy({} as EngineClient, {
      get: (_t, name) => () => {
        engineCalls.push(String(name));
        throw new Error(`engine.${String(name)} called offline`);
      },
    });
    const makeContext = (base: { io: IO; env: NodeJS.ProcessEnv; cwd: string; debug: boolean; signal: AbortSignal; secrets: Set<string> }): Context => {
      const runner = new ExecaProcessRunner(() => {}, () => base.secrets);
      const real = new DockerComposeClient(runner);
      const compose: ComposeClient = {
        version: () => (composeCalls.push('version'), real.version()),
        validate: (t) => (composeCalls.push('validate'), real.validate(t)),
        pendingChanges: () => Promise.reject(new Error(`compose ${composeCalls.push('pendingChanges')} called offline`)),
        recreate: () => Promise.reject(new Error(`compose ${composeCalls.push('recreate')} called offline`)),
        upAll: () => Promise.reject(new Error(`compose ${composeCalls.push('upAll')} called offline`)),
        down: () => Promise.reject(new Error(`compose ${composeCalls.push('down')} called offline`)),
      };
      return { ...base, engine, compose, runner, clock: systemClock };
    };
    for (const format of ['markdown', 'json', 'text']) {
      const r = await run(offline(TWINS, '--output', format), { makeContext });
      expect(r.code, r.stderr).toBe(0);
    }
    expect(engineCalls).toEqual([]);
    expect(new Set(composeCalls)).toEqual(new Set(['version', 'validate']));
  });

  it('refuses the combinations that mean nothing with one sentence and exit 2', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['rollout', '--output', 'markdown'], /^error: --output markdown is the dry run a reviewer reads: use it with --dry-run\.$/],
      [['rollout', '--offline', '--current', PLANS.current], /^error: --offline works only with --dry-run/],
      [['rollout', '--dry-run', '--offline'], /^error: --offline needs --current FILE/],
      [['rollout', '--dry-run', '--host-cpus', '16'], /^error: --host-cpus and --host-memory go with --offline/],
      [['rollout', '--dry-run', '--output', 'yaml'], /^error: option '--output <format>' argument 'yaml' is invalid/],
    ];
    for (const [args, message] of cases) {
      const r = await run(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr.trim()).toMatch(message);
    }
  });
});

describe('planted secrets never appear in any dry run output', () => {
  // Made before the tests and removed after them (in the describe body, a filtered run would skip the removal).
  let dir = '';
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  const twins = path.join(root, 'fixtures', 'compose', 'arena');
  const planted = {
    oldKey: 'planted-old-django-key-3f9a1c',
    newKey: 'planted-new-django-key-8b27de',
    oldDbPassword: 'Pl4nted-Old-Db-Pass',
    newDbPassword: 'Pl4nted-New-Db-Pass',
    // Characters that markdown and JSON escape: redacted before escaping, or this would slip through as tok\|en…
    oldToken: 'planted|old-tok`en"with-quotes_and*stars',
    newToken: 'planted|new-tok`en"with\\backslash_and*stars',
    plainFromEnvFile: 'planted-plain-env-file-value-5521',
  };
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'arena-deploy-test-'));
    copyFileSync(path.join(twins, 'docker-compose.loadbalanced.yml'), path.join(dir, 'current.yml'));
    copyFileSync(path.join(twins, 'docker-compose.loadbalanced.optimized.yml'), path.join(dir, 'target.yml'));
    cpSync(path.join(twins, 'nginx'), path.join(dir, 'nginx'), { recursive: true });
    // Both plans read ./arena.env; each override adds environment entries and its own env file.
    writeFileSync(path.join(dir, 'arena.env'), `DJANGO_SECRET_KEY=${planted.oldKey}\nARENA_REVISION=\n`);
    writeFileSync(path.join(dir, 'current-secrets.env'), `FEATURE_SETTING=${planted.plainFromEnvFile}\n`);
    writeFileSync(path.join(dir, 'target-secrets.env'), `DJANGO_SECRET_KEY=${planted.newKey}\nFEATURE_SETTING=${planted.plainFromEnvFile}-v2\n`);
    const override = (envFile: string, password: string, token: string, extra: string) =>
      [
        'services:',
        '  web-1:',
        `    env_file: [./${envFile}]`,
        '    environment:',
        `      DATABASE_PASSWORD: "${password}"`,
        `      DATABASE_URL: "postgres://arena:${password}@db:5432/arena"`,
        `      API_TOKEN: ${JSON.stringify(token)}`,
        extra,
        '',
      ].join('\n');
    writeFileSync(path.join(dir, 'current-override.yml'), override('current-secrets.env', planted.oldDbPassword, planted.oldToken, ''));
    // The new password and token also land in labels, under no secret-looking key: they are masked as the secrets they are,
    // also where the labels are shown as JSON (the quote and backslash of the token escaped).
    writeFileSync(path.join(dir, 'target-override.yml'), override('target-secrets.env', planted.newDbPassword, planted.newToken, `    labels:\n      com.example.db-hint: "${planted.newDbPassword}"\n      com.example.copy-of-the-token: ${JSON.stringify(planted.newToken)}`));
  });
  const args = (format: string) => ['rollout', '-f', path.join(dir, 'target.yml'), '-f', path.join(dir, 'target-override.yml'), '--current', path.join(dir, 'current.yml'), '--current', path.join(dir, 'current-override.yml'), '--dry-run', '--offline', '--output', format, '--host-cpus', '2', '--host-memory', '24g'];

  for (const format of ['text', 'markdown', 'json']) {
    it(`--output ${format}`, async () => {
      const r = await run(args(format));
      expect(r.code, r.stderr).toBe(0);
      const all = r.stdout + r.stderr;
      for (const [name, value] of Object.entries(planted)) {
        // The value as it is, as JSON and markdown would escape it, and any 12 characters in a row of each of those:
        // a clipped value must not show half a secret either.
        const json = (v: string) => JSON.stringify(v).slice(1, -1);
        const whole = [value, json(value), json(json(value))].flatMap((v) => [v, v.replace(/\|/g, '\\|'), mdText(v), mdCode(v)]);
        const forms = [...whole];
        for (const w of whole) for (let i = 0; i + 12 <= w.length; i += 1) forms.push(w.slice(i, i + 12));
        for (const form of new Set(forms)) {
          expect(all.includes(form), `${name} (${form}) leaked in --output ${format}`).toBe(false);
        }
      }
      // The masked keys still say that they changed.
      if (format === 'markdown') {
        expect(r.stdout).toContain('| env DJANGO\\_SECRET\\_KEY | `[REDACTED] (old)` | `[REDACTED] (new)` |');
        expect(r.stdout).toContain('| env DATABASE\\_PASSWORD | `[REDACTED] (old)` | `[REDACTED] (new)` |');
        expect(r.stdout).toContain('| env DATABASE\\_URL | `[REDACTED] (old)` | `[REDACTED] (new)` |');
        expect(r.stdout).toContain('| env FEATURE\\_SETTING | `[REDACTED] (old)` | `[REDACTED] (new)` |');
        expect(r.stdout).toContain('| env API\\_TOKEN | `[REDACTED] (old)` | `[REDACTED] (new)` |');
      }
      if (format === 'json') {
        const web1 = (JSON.parse(r.stdout) as { services: { service: string; changes: { field: string; from: string; to: string }[] }[] }).services.find((s) => s.service === 'web-1');
        expect(web1?.changes).toContainEqual({ field: 'env DJANGO_SECRET_KEY', from: '[REDACTED] (old)', to: '[REDACTED] (new)' });
        expect(web1?.changes).toContainEqual({ field: 'env DATABASE_PASSWORD', from: '[REDACTED] (old)', to: '[REDACTED] (new)' });
        expect(web1?.changes.find((c) => c.field === 'labels')?.to).toContain('[REDACTED]');
      }
      if (format === 'text') expect(r.stdout).toContain('env DJANGO_SECRET_KEY: [REDACTED] (old) → [REDACTED] (new)');
    });
  }
});

describe('a service the target adds', () => {
  let dir = '';
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'arena-deploy-test-'));
    writeFileSync(path.join(dir, 'current.yml'), 'name: arena\nservices:\n  web-1:\n    image: arena-deploy/backend:fixture\n');
    writeFileSync(
      path.join(dir, 'target.yml'),
      'name: arena\nservices:\n  web-1:\n    image: arena-deploy/backend:fixture\n  worker:\n    image: arena-deploy/backend:fixture\n    command: ["celery", "worker"]\n    environment: {BROKER_PASSWORD: "planted-broker-password-77"}\n    deploy: {resources: {limits: {cpus: "0.5", memory: 512M}}}\n',
    );
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('is listed as added, with what it will be, its secrets masked', async () => {
    const r = await run(['rollout', path.join(dir, 'target.yml'), '--current', path.join(dir, 'current.yml'), '--dry-run', '--offline', '--output', 'markdown']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('**1 added (worker), web-1 unchanged;');
    expect(r.stdout).toContain('| worker | create (new) | new service, image, command, cpu limit, memory limit, env BROKER\\_PASSWORD |');
    expect(r.stdout).toContain('| image | — | `arena-deploy/backend:fixture` |');
    expect(r.stdout).toContain('| memory limit | — | `512M` |');
    expect(r.stdout).toContain('| env BROKER\\_PASSWORD | — | `[REDACTED]` |');
    expect(r.stdout).not.toContain('planted-broker-password-77');
  });
});

describe('markdown cells', () => {
  // As GitHub's table extension does: a backslash escapes the next character (itself too), any other pipe ends a cell.
  const cells = (row: string) => {
    const inner = row.slice(2, -2);
    const out = [''];
    for (let i = 0; i < inner.length; i += 1) {
      const c = inner[i] as string;
      if (c === '\\') out[out.length - 1] += c + (inner[(i += 1)] ?? '');
      else if (c === '|') out.push('');
      else out[out.length - 1] += c;
    }
    return out;
  };
  const hostile = ['a|b', 'a\\|b', 'ends with a backslash\\', 'a\\\\|b', 'line one\nline two', 'with `backticks` and ``two``', '`leading', 'trailing`', '</details><script>x</script>', '| --- |', '**bold** _em_ [link](x) ~strike~ # head', ''];

  for (const v of hostile) {
    it(`keeps ${JSON.stringify(v)} inside one cell, as code and as text`, () => {
      for (const rendered of [mdCode(v), mdText(v)]) {
        const row = `| field | ${rendered} | x |`;
        expect(row.includes('\n')).toBe(false);
        expect(cells(row)).toHaveLength(3);
        // No raw HTML but line breaks: inside code `<` is literal, in text it is escaped.
        if (!rendered.startsWith('`')) expect(rendered).not.toMatch(/(?<!\\)<(?!br>)/);
      }
    });
  }

  it('fences code with more backticks than the value holds', () => {
    expect(mdCode('plain')).toBe('`plain`');
    expect(mdCode('a`b')).toBe('``a`b``');
    expect(mdCode('``x``')).toBe('``` ``x`` ```');
    expect(mdCode('a|b')).toBe('`a\\|b`');
    expect(mdCode('a\nb')).toBe('`a\\nb`');
    expect(mdText('a|b\nc')).toBe('a\\|b<br>c');
  });
});
