/**
 * Remote engines end to end: Debian's OpenSSH server on 127.0.0.1:2263 with keys made for the test, the fleet rolled
 * out through DOCKER_HOST=ssh://…, --context and DOCKER_CONTEXT; wrong key and wrong port fail with one sentence.
 *
 * OpenSSH reads ~/.ssh from the password database, not $HOME, so the client side is an `ssh` wrapper first on PATH
 * that adds `-F <the test's ssh_config>`: the tool's transport and the docker CLI under compose both run `ssh` from
 * PATH, so both get the same config, key and known_hosts, as they would get an operator's ~/.ssh.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerEngineClient } from '../../src/engine/docker-engine-client.js';
import { resolveEngineTarget } from '../../src/engine/target.js';
import { cli, inspectProject, OPTIMIZED, tempStateDir, twins, useFleet } from './helpers.js';

const SSH_PORT = 2263;
const REMOTE = `ssh://root@127.0.0.1:${SSH_PORT}`;
const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

/** The test's own sshd, client config and ssh wrappers (right key, wrong key). */
function sshSetup() {
  const dir = tempStateDir();
  const s = {
    dir,
    bin: path.join(dir, 'bin'),
    wrongBin: path.join(dir, 'bin-wrong-key'),
    dockerConfig: path.join(dir, 'docker-config'),
    sshd: undefined as ChildProcess | undefined,
    sshdLog: '',
  };
  beforeAll(async () => {
    mkdirSync('/run/sshd', { recursive: true });
    for (const k of ['host_key', 'client_key', 'wrong_key']) execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `arena-test-${k}`, '-f', path.join(dir, k)]);
    copyFileSync(path.join(dir, 'client_key.pub'), path.join(dir, 'authorized_keys'));
    chmodSync(path.join(dir, 'authorized_keys'), 0o600);
    writeFileSync(
      path.join(dir, 'sshd_config'),
      [
        `ListenAddress 127.0.0.1:${SSH_PORT}`,
        `HostKey ${path.join(dir, 'host_key')}`,
        `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
        `PidFile ${path.join(dir, 'sshd.pid')}`,
        'PermitRootLogin prohibit-password',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'UsePAM no',
        // The temp folder is not root-owned 0755 all the way up as StrictModes wants.
        'StrictModes no',
        '',
      ].join('\n'),
    );
    writeFileSync(path.join(dir, 'known_hosts'), `[127.0.0.1]:${SSH_PORT} ${readFileSync(path.join(dir, 'host_key.pub'), 'utf8').split(' ').slice(0, 2).join(' ')}\n`);
    for (const [bin, key] of [
      [s.bin, 'client_key'],
      [s.wrongBin, 'wrong_key'],
    ] as const) {
      const config = path.join(dir, `ssh_config-${key}`);
      writeFileSync(config, `Host 127.0.0.1\n  IdentityFile ${path.join(dir, key)}\n  IdentitiesOnly yes\n  UserKnownHostsFile ${path.join(dir, 'known_hosts')}\n  StrictHostKeyChecking yes\n`);
      mkdirSync(bin);
      writeFileSync(path.join(bin, 'ssh'), `#!/bin/sh\nexec /usr/bin/ssh -F '${config}' "$@"\n`, { mode: 0o755 });
    }
    s.sshd = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', path.join(dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] });
    s.sshd.stderr?.on('data', (d: Buffer) => (s.sshdLog += d.toString()));
    const until = Date.now() + 20_000;
    while (!(await listening(SSH_PORT))) {
      if (s.sshd.exitCode !== null || Date.now() > until) throw new Error(`sshd did not start on 127.0.0.1:${SSH_PORT}:\n${s.sshdLog}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    // A docker context in the test's own DOCKER_CONFIG, made by the docker CLI itself.
    mkdirSync(s.dockerConfig);
    await execa('docker', ['context', 'create', 'arena-test-ctx', '--docker', `host=${REMOTE}`], { env: { ...process.env, DOCKER_CONFIG: s.dockerConfig } });
  }, 60_000);
  afterAll(() => {
    s.sshd?.kill('SIGTERM');
  });
  return s;
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port }, () => (sock.end(), resolve(true)));
    sock.on('error', () => resolve(false));
  });
}

/** ssh children carrying `docker system dial-stdio` to the test's sshd still running after a few seconds' grace. */
async function dialChildren(graceMs = 5000): Promise<string[]> {
  const list = () => execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' }).split('\n').filter((l) => l.includes('dial-stdio') && l.includes(String(SSH_PORT)) && !l.includes('sshd'));
  const until = Date.now() + graceMs;
  while (list().length && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
  return list();
}

const errorLines = (stderr: string) => stderr.trim().split('\n').filter((l) => l.startsWith('error: '));

describe('a fleet rolled out over ssh', () => {
  const ssh = sshSetup();
  const { project, env: fleetEnv, state } = useFleet(OPTIMIZED, 63);
  const env = (extra: Record<string, string> = {}) => {
    const e: Record<string, string> = { ...fleetEnv, PATH: `${ssh.bin}:${process.env['PATH']}`, DOCKER_CONFIG: ssh.dockerConfig, ...extra };
    if (!('DOCKER_HOST' in extra)) delete e['DOCKER_HOST'];
    return e;
  };
  /** An override setting ARENA_ROUND per service: a change compose recreates the service for. */
  const override = (rounds: Record<string, number>) => {
    const f = path.join(tempStateDir(), 'override.yml');
    writeFileSync(f, `services:\n${Object.entries(rounds).map(([s, n]) => `  ${s}:\n    environment:\n      ARENA_ROUND: "${n}"\n`).join('')}`);
    return f;
  };
  const hashes = async () => Object.fromEntries([...(await inspectProject(project))].map(([s, c]) => [s, c.Config.Labels['com.docker.compose.config-hash']]));
  const rollout = (file: string, e: Record<string, string>, ...flags: string[]) =>
    cli(['rollout', '-f', OPTIMIZED, '-f', file, '--project', project, '--state-dir', state, '--monitor', '1s', ...flags], e);

  it('DOCKER_HOST=ssh://root@127.0.0.1:2263: recreates web-1 and nginx, checks and backs up the nginx conf on the engine host', async () => {
    const before = await hashes();
    const r = await rollout(override({ 'web-1': 1, nginx: 1 }), env({ DOCKER_HOST: REMOTE }));
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toContain(`Rolling out ${project} on ${REMOTE}:`);
    expect(r.stdout).toContain(`Engine: ${REMOTE}\n`);
    // nginx reads its conf on the engine's host: no drain through this machine's copy, said once; no probe of 127.0.0.1.
    expect(r.stderr).toContain(`The nginx drain is off with a remote engine: nginx reads its conf on ${REMOTE}'s host, and the tool edits files on this machine only (README: Remote engines).`);
    expect(r.stderr).not.toContain('marked down in nginx');
    expect(r.stderr).not.toContain('answered)');
    const after = await hashes();
    expect(after['web-1']).not.toBe(before['web-1']);
    expect(after['nginx']).not.toBe(before['nginx']);
    for (const s of ['web-2', 'web-3', 'web-4', 'web-5', 'web-6', 'redis']) expect(after[s], s).toBe(before[s]);
    const web1 = (await inspectProject(project)).get('web-1');
    expect(web1?.Config.Env).toContain('ARENA_ROUND=1');
    // The backup holds the nginx conf as the engine's host had it, read through the engine.
    const backups = readdirSync(path.join(state, 'backups', project));
    const manifest = JSON.parse(readFileSync(path.join(state, 'backups', project, backups[0] as string, 'manifest.json'), 'utf8')) as { remoteFiles: Array<{ original: string; sha256: string; stored: string }> };
    const conf = path.join(twins, 'nginx', 'load-balancer-optimized.conf');
    expect(manifest.remoteFiles).toEqual([{ original: conf, stored: path.join('remote', conf.replace(/^\//, '')), sha256: sha(conf), bytes: readFileSync(conf).length }]);
    // No throwaway reader container stays, and no ssh child outlives the run.
    expect((await execa('docker', ['ps', '-aq', '--filter', 'label=org.arena-deploy.helper'])).stdout).toBe('');
    expect(await dialChildren()).toEqual([]);
  }, 300_000);

  it('--context arena-test-ctx: the report names the context, web-2 is recreated', async () => {
    const before = await hashes();
    const r = await rollout(override({ 'web-1': 1, nginx: 1, 'web-2': 2 }), env(), '--context', 'arena-test-ctx');
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain(`Engine: ${REMOTE} (context arena-test-ctx)\n`);
    const after = await hashes();
    expect(after['web-2']).not.toBe(before['web-2']);
    for (const s of ['web-1', 'nginx', 'web-3', 'web-4', 'web-5', 'web-6', 'redis']) expect(after[s], s).toBe(before[s]);
    expect(await dialChildren()).toEqual([]);
  }, 300_000);

  it('DOCKER_CONTEXT=arena-test-ctx, and status names the target', async () => {
    const before = await hashes();
    const r = await rollout(override({ 'web-1': 3, nginx: 1, 'web-2': 2 }), env({ DOCKER_CONTEXT: 'arena-test-ctx' }));
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain(`Engine: ${REMOTE} (context arena-test-ctx)\n`);
    const after = await hashes();
    expect(after['web-1']).not.toBe(before['web-1']);
    for (const s of ['web-2', 'web-3', 'web-4', 'web-5', 'web-6', 'redis', 'nginx']) expect(after[s], s).toBe(before[s]);
    const st = await cli(['status', '--project', project, '--state-dir', state, '--output', 'json'], env({ DOCKER_CONTEXT: 'arena-test-ctx' }));
    expect(st.stdout, st.stderr).toMatch(/^\{/);
    expect(JSON.parse(st.stdout).engine).toBe(`${REMOTE} (context arena-test-ctx)`);
    expect(await dialChildren()).toEqual([]);
  }, 300_000);

  it('a wrong key: one sentence, exit 4, nothing changed', async () => {
    const before = await hashes();
    const r = await rollout(override({ 'web-1': 4, nginx: 1, 'web-2': 2 }), { ...env({ DOCKER_HOST: REMOTE }), PATH: `${ssh.wrongBin}:${process.env['PATH']}` });
    expect(r.exitCode, r.stderr).toBe(4);
    expect(errorLines(r.stderr)).toEqual([
      `error: Cannot reach the Docker engine at ${REMOTE} over ssh (root@127.0.0.1: Permission denied (publickey)): check that \`ssh -p ${SSH_PORT} -l root 127.0.0.1 docker version\` works without a prompt (arena-deploy runs ssh with BatchMode=yes, so it needs key authentication and a known host key).`,
    ]);
    expect(r.stderr.split('\n').filter(Boolean)).toHaveLength(1);
    expect(await hashes()).toEqual(before);
    expect(existsSync(path.join(state, 'locks', `${project}.lock`))).toBe(false);
  }, 120_000);

  it('a wrong port: one sentence, exit 4', async () => {
    const r = await cli(['status', '--project', project, '--state-dir', state], env({ DOCKER_HOST: 'ssh://root@127.0.0.1:2264' }));
    expect(r.exitCode, r.stderr).toBe(4);
    expect(errorLines(r.stderr)).toEqual([
      'error: Cannot reach the Docker engine at ssh://root@127.0.0.1:2264 over ssh (ssh: connect to host 127.0.0.1 port 2264: Connection refused): check that `ssh -p 2264 -l root 127.0.0.1 docker version` works without a prompt (arena-deploy runs ssh with BatchMode=yes, so it needs key authentication and a known host key).',
    ]);
  }, 60_000);

  it('an unknown context: one sentence, exit 2', async () => {
    const r = await cli(['status', '--project', project, '--context', 'no-such-ctx'], env());
    expect(r.exitCode, r.stderr).toBe(2);
    expect(errorLines(r.stderr)).toEqual([`error: The docker context "no-such-ctx" (from --context) does not exist in ${ssh.dockerConfig}: see \`docker context ls\`.`]);
  }, 60_000);

  it('the streaming calls (events, logs) work over the ssh transport, and every ssh child ends with its connection', async () => {
    const prevPath = process.env['PATH'];
    process.env['PATH'] = `${ssh.bin}:${prevPath}`;
    const engine = new DockerEngineClient(() => resolveEngineTarget({ env: { DOCKER_HOST: REMOTE } }));
    try {
      const info = await engine.ping();
      expect(info).toMatchObject({ endpoint: REMOTE, remote: true });
      const web3 = (await engine.listProject(project)).find((c) => c.service === 'web-3');
      expect(web3?.health).toBe('healthy');
      expect(await engine.logsTail(web3!.id, 5)).not.toBe('');
      // An event of the project arrives over the stream: a docker exec makes exec_create/exec_start events.
      const ac = new AbortController();
      const seen: string[] = [];
      const reading = (async () => {
        for await (const e of engine.events(project, ac.signal, Date.now() - 1000)) {
          seen.push(e.action);
          if (e.action.startsWith('exec_')) break;
        }
      })();
      await new Promise((r) => setTimeout(r, 1500));
      await execa('docker', ['exec', web3!.name, 'true']);
      await Promise.race([reading, new Promise((_, reject) => setTimeout(() => reject(new Error(`no exec event over ssh; saw ${seen.join(', ')}`)), 20_000))]);
      ac.abort();
      // Kept-alive connections close after 10 s idle, each taking its ssh child with it.
      const until = Date.now() + 20_000;
      while (engine.openSshConnections > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 250));
      expect(engine.openSshConnections).toBe(0);
      expect(await dialChildren()).toEqual([]);
    } finally {
      engine.close();
      process.env['PATH'] = prevPath;
    }
  }, 120_000);
});
