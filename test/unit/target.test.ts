import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EngineUnreachableError, UsageError } from '../../src/errors.js';
import { childEnv, contextDirName, describeTarget, parseSshHost, resolveEngineTarget, sshDialArgs } from '../../src/engine/target.js';
import { sshReason } from '../../src/engine/ssh-dial-agent.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'arena-deploy-test-target-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Writes a context as `docker context create` does. */
function context(name: string, host: string, opts: { skipTls?: boolean; tls?: boolean } = {}): void {
  const id = contextDirName(name);
  mkdirSync(path.join(dir, 'contexts', 'meta', id), { recursive: true });
  writeFileSync(path.join(dir, 'contexts', 'meta', id, 'meta.json'), JSON.stringify({ Name: name, Metadata: {}, Endpoints: { docker: { Host: host, SkipTLSVerify: opts.skipTls ?? false } } }));
  if (opts.tls) {
    mkdirSync(path.join(dir, 'contexts', 'tls', id, 'docker'), { recursive: true });
    for (const f of ['ca.pem', 'cert.pem', 'key.pem']) writeFileSync(path.join(dir, 'contexts', 'tls', id, 'docker', f), 'x');
  }
}
const current = (name: string) => writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ auths: {}, currentContext: name }));
const env = (extra: Record<string, string> = {}) => ({ DOCKER_CONFIG: dir, ...extra });

describe('resolveEngineTarget: the docker CLI precedence', () => {
  beforeEach(() => {
    context('flagctx', 'ssh://flag@10.0.0.1');
    context('envctx', 'ssh://envctx@10.0.0.2:2200');
    context('cfgctx', 'tcp://10.0.0.3:2375');
    current('cfgctx');
  });

  it('--context wins over everything', () => {
    const t = resolveEngineTarget({ contextFlag: 'flagctx', env: env({ DOCKER_HOST: 'tcp://1.2.3.4:2375', DOCKER_CONTEXT: 'envctx' }) });
    expect(t).toEqual({ host: 'ssh://flag@10.0.0.1', source: 'flag', context: 'flagctx', tls: undefined });
    expect(describeTarget(t)).toBe('ssh://flag@10.0.0.1 (context flagctx)');
  });

  it('DOCKER_HOST wins over DOCKER_CONTEXT and the config', () => {
    const t = resolveEngineTarget({ env: env({ DOCKER_HOST: 'tcp://1.2.3.4:2375', DOCKER_CONTEXT: 'envctx' }) });
    expect(t).toEqual({ host: 'tcp://1.2.3.4:2375', source: 'DOCKER_HOST', context: undefined, tls: undefined });
    expect(describeTarget(t)).toBe('tcp://1.2.3.4:2375');
  });

  it('DOCKER_CONTEXT wins over the config', () => {
    expect(resolveEngineTarget({ env: env({ DOCKER_CONTEXT: 'envctx' }) })).toMatchObject({ host: 'ssh://envctx@10.0.0.2:2200', source: 'DOCKER_CONTEXT', context: 'envctx' });
  });

  it('then the currentContext of $DOCKER_CONFIG/config.json', () => {
    expect(resolveEngineTarget({ env: env() })).toMatchObject({ host: 'tcp://10.0.0.3:2375', source: 'config', context: 'cfgctx' });
  });

  it('~/.docker when DOCKER_CONFIG is unset', () => {
    const home = mkdtempSync(path.join(os.tmpdir(), 'arena-deploy-test-home-'));
    try {
      mkdirSync(path.join(home, '.docker'));
      writeFileSync(path.join(home, '.docker', 'config.json'), JSON.stringify({ currentContext: 'default' }));
      expect(resolveEngineTarget({ env: {}, homeDir: home })).toEqual({ host: 'unix:///var/run/docker.sock', source: 'config', context: 'default', tls: undefined });
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });

  it('the local socket when nothing names an engine', () => {
    rmSync(path.join(dir, 'config.json'));
    const t = resolveEngineTarget({ env: env() });
    expect(t).toEqual({ host: 'unix:///var/run/docker.sock', source: 'default', context: undefined, tls: undefined });
    expect(describeTarget(t)).toBe('unix:///var/run/docker.sock');
  });

  it('the context "default" is DOCKER_HOST, else the local socket', () => {
    expect(resolveEngineTarget({ contextFlag: 'default', env: env() }).host).toBe('unix:///var/run/docker.sock');
    expect(resolveEngineTarget({ contextFlag: 'default', env: env({ DOCKER_HOST: 'ssh://a@b' }) }).host).toBe('ssh://a@b');
  });
});

describe('resolveEngineTarget: TLS', () => {
  it('a tcp context with TLS material verifies unless SkipTLSVerify', () => {
    context('tls', 'tcp://10.0.0.9:2376', { tls: true });
    context('skip', 'tcp://10.0.0.9:2376', { tls: true, skipTls: true });
    const certPath = path.join(dir, 'contexts', 'tls', contextDirName('tls'), 'docker');
    expect(resolveEngineTarget({ contextFlag: 'tls', env: env() }).tls).toEqual({ verify: true, certPath });
    expect(resolveEngineTarget({ contextFlag: 'skip', env: env() }).tls).toEqual({ verify: false, certPath: path.join(dir, 'contexts', 'tls', contextDirName('skip'), 'docker') });
  });

  it('DOCKER_TLS_VERIFY and DOCKER_CERT_PATH apply to a tcp DOCKER_HOST', () => {
    expect(resolveEngineTarget({ env: env({ DOCKER_HOST: 'tcp://h:2376', DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: '/certs' }) }).tls).toEqual({ verify: true, certPath: '/certs' });
    expect(resolveEngineTarget({ env: env({ DOCKER_HOST: 'tcp://h:2376', DOCKER_TLS_VERIFY: '1' }) }).tls).toEqual({ verify: true, certPath: dir });
    expect(resolveEngineTarget({ env: env({ DOCKER_HOST: 'tcp://h:2375' }) }).tls).toBeUndefined();
  });
});

describe('resolveEngineTarget: bad input is one sentence', () => {
  it('an unknown context is a usage error (exit 2)', () => {
    expect(() => resolveEngineTarget({ contextFlag: 'nope', env: env() })).toThrow(UsageError);
    expect(() => resolveEngineTarget({ contextFlag: 'nope', env: env() })).toThrow(`The docker context "nope" (from --context) does not exist in ${dir}: see \`docker context ls\`.`);
    expect(() => resolveEngineTarget({ env: env({ DOCKER_CONTEXT: 'nope' }) })).toThrow('(from DOCKER_CONTEXT)');
  });

  it('a malformed config.json or meta.json is a usage error', () => {
    writeFileSync(path.join(dir, 'config.json'), '{ not json');
    expect(() => resolveEngineTarget({ env: env() })).toThrow(`The docker CLI config ${path.join(dir, 'config.json')} is not valid JSON: fix it, or set DOCKER_HOST or --context.`);
    const id = contextDirName('broken');
    mkdirSync(path.join(dir, 'contexts', 'meta', id), { recursive: true });
    writeFileSync(path.join(dir, 'contexts', 'meta', id, 'meta.json'), JSON.stringify({ Name: 'broken', Endpoints: {} }));
    expect(() => resolveEngineTarget({ contextFlag: 'broken', env: env() })).toThrow(/^The docker context "broken" is malformed: .*meta\.json has no Endpoints\.docker\.Host\.$/);
  });

  it('an address neither dockerode nor docker can use is exit 4', () => {
    expect(() => resolveEngineTarget({ env: env({ DOCKER_HOST: 'ftp://x' }) })).toThrow(EngineUnreachableError);
    expect(() => resolveEngineTarget({ env: env({ DOCKER_HOST: 'ftp://x' }) })).toThrow('DOCKER_HOST "ftp://x" is not a valid address: use unix:///path, tcp://host:port or ssh://user@host[:port].');
    context('bad', 'ftp://y');
    expect(() => resolveEngineTarget({ contextFlag: 'bad', env: env() })).toThrow('The engine address "ftp://y" of context "bad" is not a valid address: use unix:///path, tcp://host:port or ssh://user@host[:port].');
    expect(() => resolveEngineTarget({ env: env({ DOCKER_HOST: 'unix://' }) })).toThrow('has no socket path');
  });
});

describe('childEnv: the compose children reach the same engine', () => {
  it('sets DOCKER_HOST and drops DOCKER_CONTEXT', () => {
    context('c', 'ssh://deploy@10.0.0.5');
    const e = childEnv(resolveEngineTarget({ contextFlag: 'c', env: env() }), env({ DOCKER_CONTEXT: 'other', PATH: '/bin', DOCKER_TLS_VERIFY: '1' }));
    expect(e).toEqual({ DOCKER_CONFIG: dir, PATH: '/bin', DOCKER_HOST: 'ssh://deploy@10.0.0.5' });
  });

  it('adds the TLS variables of a TLS context', () => {
    context('tls', 'tcp://10.0.0.9:2376', { tls: true });
    context('skip', 'tcp://10.0.0.9:2376', { tls: true, skipTls: true });
    const certPath = path.join(dir, 'contexts', 'tls', contextDirName('tls'), 'docker');
    expect(childEnv(resolveEngineTarget({ contextFlag: 'tls', env: env() }), {})).toEqual({ DOCKER_HOST: 'tcp://10.0.0.9:2376', DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: certPath });
    expect(childEnv(resolveEngineTarget({ contextFlag: 'skip', env: env() }), {})).toMatchObject({ DOCKER_TLS: '1' });
  });
});

describe('ssh argv, as the docker CLI builds it', () => {
  it('user, port and host alias', () => {
    expect(sshDialArgs(parseSshHost('ssh://root@127.0.0.1:2263'))).toEqual(['-o', 'BatchMode=yes', '-o', 'ConnectTimeout=15', '-T', '-p', '2263', '-l', 'root', '--', '127.0.0.1', 'docker', 'system', 'dial-stdio']);
    expect(sshDialArgs(parseSshHost('ssh://prod-box'))).toEqual(['-o', 'BatchMode=yes', '-o', 'ConnectTimeout=15', '-T', '--', 'prod-box', 'docker', 'system', 'dial-stdio']);
  });

  it('picks ssh\'s telling line', () => {
    expect(sshReason("Warning: Permanently added '[127.0.0.1]:2263' (ED25519) to the list of known hosts.\r\nroot@127.0.0.1: Permission denied (publickey).\n")).toBe('root@127.0.0.1: Permission denied (publickey)');
    expect(sshReason('Host key verification failed.\n')).toBe('Host key verification failed');
  });
});
