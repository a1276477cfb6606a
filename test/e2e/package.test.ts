/** The package as a user installs it: `npm pack`, `npm install -g` of the tarball into a fresh prefix, the bin run from there. */
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { root, tempStateDir } from './helpers.js';

const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { name: string; version: string };

describe('npm pack and a global install', () => {
  const dir = tempStateDir();
  const prefix = path.join(dir, 'prefix');
  const home = path.join(dir, 'home');
  mkdirSync(home);
  /** A clean environment: the installed bin and node on PATH, an empty HOME, nothing of this checkout. */
  const clean = { PATH: [path.join(prefix, 'bin'), path.dirname(process.execPath), '/usr/local/bin', '/usr/bin', '/bin'].join(path.delimiter), HOME: home, LANG: 'C.UTF-8' };
  let tarball = '';

  it('packs dist, bin, plans and fixtures, and neither sources nor tests', async () => {
    // --ignore-scripts: dist is built (npm test runs tsc first); a `prepare` rewriting dist would race the other test files.
    const packed = await execa('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: root });
    const [info] = JSON.parse(packed.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
    tarball = path.join(dir, info!.filename);
    const files = info!.files.map((f) => f.path);
    for (const f of ['bin/arena-deploy', 'dist/cli/main.js', 'dist/report/json-report.js', 'plans/docker-compose.loadbalanced.optimized.yml', 'plans/nginx/load-balancer-optimized.conf', 'fixtures/compose/arena/docker-compose.loadbalanced.yml', 'fixtures/images/build.sh', 'package.json', 'README.md']) {
      expect(files).toContain(f);
    }
    expect(files.filter((f) => f.startsWith('src/') || f.startsWith('test/') || f.startsWith('node_modules/') || f.startsWith('.ci/'))).toEqual([]);
  }, 120_000);

  it('installs with npm install -g and runs --version and --help from the installed copy, without this checkout', async () => {
    // The dependencies come from the npm cache `npm ci` filled, else from the registry.
    await execa('npm', ['install', '--global', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', tarball], { cwd: dir });
    const version = await execa('arena-deploy', ['--version'], { env: clean, extendEnv: false, cwd: home, reject: false });
    expect(version.exitCode, version.stderr).toBe(0);
    expect(version.stdout).toBe(pkg.version);
    const help = await execa('arena-deploy', ['--help'], { env: clean, extendEnv: false, cwd: home, reject: false });
    expect(help.exitCode, help.stderr).toBe(0);
    for (const command of ['rollout', 'validate', 'status', 'rollback', 'history', 'demo']) expect(help.stdout).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
    const rolloutHelp = await execa('arena-deploy', ['rollout', '--help'], { env: clean, extendEnv: false, cwd: home });
    expect(rolloutHelp.stdout).toContain('--output <format>');
    expect(rolloutHelp.stdout).toContain('-y, --yes');
    // The packaged plans are what the installed copy reads when no plan is given.
    const validate = await execa('arena-deploy', ['validate', '--host-cpus', '16', '--host-memory', '64g'], { env: clean, extendEnv: false, cwd: home, reject: false });
    expect(validate.stderr).toBe('');
    expect(validate.stdout).toContain('docker-compose.loadbalanced.optimized.yml');
    // It is the installed copy that ran, not this checkout.
    const resolved = await execa('node', ['-e', 'console.log(require("fs").realpathSync(process.argv[1]))', path.join(prefix, 'bin', 'arena-deploy')], { env: clean, extendEnv: false });
    expect(resolved.stdout.startsWith(path.join(prefix, 'lib', 'node_modules', pkg.name))).toBe(true);
  }, 600_000);
});
