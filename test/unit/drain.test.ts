/** The drain's pure parts (marking a server down and back, counting connections) and its handling of nginx's answers, with a fake engine. */
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { connectionsTo, createDrainer, DRAIN_MARK, drainBoundMs, markDown, reloadNginxOf, restoreDrainedFiles, unmarkDown, writeInPlace } from '../../src/rollout/drain.js';
import type { BackupManifest } from '../../src/backup/create-backup.js';
import type { EngineClient, ExecResult } from '../../src/engine/engine-client.js';
import { loadPlan } from '../../src/plan/load-plan.js';

// The fixture's conf in short (not read from fixtures/: an end-to-end rollout running beside may have it drained).
const CONF = `# nginx load balancer, original plan
upstream arena_backend {
    least_conn;
    server web-1:8000 max_fails=3 fail_timeout=30s;
    server web-2:8000 max_fails=3 fail_timeout=30s;
    server web-10:8000 max_fails=3 fail_timeout=30s;
    keepalive 32;
}

server {
    listen 80;
    location / {
        proxy_pass http://arena_backend;
    }
}
`;

describe('markDown / unmarkDown', () => {
  it('leaves a line alone that holds another directive after the server: the mark\'s comment would take that one out too', () => {
    const two = 'upstream b {\n    server web-1:8000 max_fails=3; server web-2:8000;\n}\n';
    expect(markDown(two, new Set(['web-1']))).toEqual({ text: two, marked: new Set() });
  });

  it('marks a server line that ends in a comment, or in CRLF, and gives the bytes back', () => {
    const text = 'upstream b {\r\n    server web-1:8000 weight=2; # the first\r\n    server web-2:8000;\r\n}\r\n';
    const { text: marked, marked: which } = markDown(text, new Set(['web-1', 'web-2']));
    expect(which).toEqual(new Set(['web-1', 'web-2']));
    expect(marked).toContain(`server web-1:8000 weight=2 down;${DRAIN_MARK} # the first\r\n`);
    expect(unmarkDown(marked)).toBe(text);
  });

  it('keeps bytes that are not UTF-8 (a Latin-1 comment) through mark and unmark, as the drainer reads them', () => {
    const bytes = Buffer.concat([Buffer.from('# owner: Ren'), Buffer.from([0xe9]), Buffer.from('\nupstream b {\n    server web-1:8000;\n}\n')]);
    const marked = Buffer.from(markDown(bytes.toString('latin1'), new Set(['web-1'])).text, 'latin1');
    expect(marked.includes(Buffer.from([0x52, 0x65, 0x6e, 0xe9]))).toBe(true);
    expect(Buffer.from(unmarkDown(marked.toString('latin1')), 'latin1').equals(bytes)).toBe(true);
  });

  it('marks exactly the named servers down, and unmarkDown gives the original bytes back', () => {
    const { text, marked } = markDown(CONF, new Set(['web-2', 'web-10']));
    expect([...marked].sort()).toEqual(['web-10', 'web-2']);
    expect(text).toContain(`    server web-2:8000 max_fails=3 fail_timeout=30s down;${DRAIN_MARK}\n`);
    expect(text).toContain(`    server web-10:8000 max_fails=3 fail_timeout=30s down;${DRAIN_MARK}\n`);
    expect(text).toContain('    server web-1:8000 max_fails=3 fail_timeout=30s;\n');
    expect(text.split('\n').length).toBe(CONF.split('\n').length);
    expect(unmarkDown(text)).toBe(CONF);
  });

  it('leaves `server {` blocks, other hosts, prefixes of the name and servers already down alone', () => {
    const conf = 'upstream u {\n  server web-1;\n  server web-11:8000;\n  server web-1:8000 backup down;\n}\nserver {\n  listen 80;\n}\n';
    const { text, marked } = markDown(conf, new Set(['web-1']));
    expect(marked).toEqual(new Set(['web-1']));
    expect(text).toBe(`upstream u {\n  server web-1 down;${DRAIN_MARK}\n  server web-11:8000;\n  server web-1:8000 backup down;\n}\nserver {\n  listen 80;\n}\n`);
    expect(markDown(conf, new Set(['web-11'])).text).toContain(`server web-11:8000 down;${DRAIN_MARK}`);
    expect(markDown('upstream u {\n  server web-1:8000 down;\n}\n', new Set(['web-1'])).marked.size).toBe(0);
  });
});

describe('connectionsTo', () => {
  const tcp = [
    '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
    // 172.18.0.5:8000 established, twice; once TIME_WAIT; one to another port; one to another host.
    '   0: 0A0012AC:A1B2 050012AC:1F40 01 00000000:00000000 00:00000000 00000000     0        0 1 1',
    '   1: 0A0012AC:A1B3 050012AC:1F40 01 00000000:00000000 00:00000000 00000000     0        0 2 1',
    '   2: 0A0012AC:A1B4 050012AC:1F40 06 00000000:00000000 00:00000000 00000000     0        0 0 3',
    '   3: 0A0012AC:A1B5 050012AC:0050 01 00000000:00000000 00:00000000 00000000     0        0 4 1',
    '   4: 0A0012AC:A1B6 060012AC:1F40 01 00000000:00000000 00:00000000 00000000     0        0 5 1',
  ].join('\n');
  it('counts ESTABLISHED connections to the address and port only', () => {
    expect(connectionsTo(tcp, ['172.18.0.5'], 8000)).toBe(2);
    expect(connectionsTo(tcp, ['172.18.0.5', '172.18.0.6'], 8000)).toBe(3);
    expect(connectionsTo(tcp, ['172.18.0.7'], 8000)).toBe(0);
  });
});

describe('writeInPlace', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  it('keeps the inode, mode and owner, and shrinks as well as grows the file', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'arena-deploy-test-'));
    dirs.push(dir);
    const f = path.join(dir, 'x.conf');
    writeFileSync(f, 'a much longer original text\n');
    chmodSync(f, 0o640);
    const before = statSync(f);
    await writeInPlace(f, Buffer.from('short\n'));
    expect(readFileSync(f, 'utf8')).toBe('short\n');
    await writeInPlace(f, Buffer.from('longer than the short one\n'));
    expect(readFileSync(f, 'utf8')).toBe('longer than the short one\n');
    const after = statSync(f);
    expect([after.ino, after.mode, after.uid, after.gid]).toEqual([before.ino, before.mode, before.uid, before.gid]);
  });
});

describe('createDrainer with a fake engine', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  async function setup(nginxT: (text: string) => ExecResult, opts: { neverWriteUnder?: (dir: string) => string } = {}) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'arena-deploy-test-'));
    dirs.push(dir);
    const conf = path.join(dir, 'lb.conf');
    writeFileSync(conf, CONF);
    const compose = path.join(dir, 'compose.yml');
    writeFileSync(compose, 'name: p\nservices:\n  web-1:\n    image: b\n    command: ["gunicorn", "app", "--graceful-timeout", "4"]\n    stop_grace_period: 9s\n  nginx:\n    image: n\n    volumes:\n      - ./lb.conf:/etc/nginx/conf.d/default.conf:ro\n');
    const plan = await loadPlan({ files: [compose], env: {} });
    const calls: string[] = [];
    let t = 0;
    const engine = {
      listProject: async () => [
        { id: 'n1', service: 'nginx', state: 'running' },
        { id: 'w1', service: 'web-1', state: 'running' },
      ],
      inspectRaw: async (ids: readonly string[]) =>
        ids.map((id) => (id === 'n1' ? { Id: 'n1', Mounts: [{ Type: 'bind', Source: conf, Destination: '/etc/nginx/conf.d/default.conf' }] } : { Id: id, Mounts: [], NetworkSettings: { Networks: { n: { IPAddress: '172.18.0.5' } } } })),
      exec: async (id: string, argv: readonly string[]) => {
        calls.push(`${id}: ${argv.join(' ')}`);
        if (argv[1] === '-t') return nginxT(readFileSync(conf, 'utf8'));
        if (argv[0] === 'cat') return { exitCode: 0, stdout: '  sl local rem st\n   0: 0A0012AC:A1B2 050012AC:1F40 01 0 0 0 0 0 0\n', stderr: '' };
        return { exitCode: 0, stdout: '', stderr: '' };
      },
    } as unknown as EngineClient;
    const log: string[] = [];
    const clock = { now: () => t, sleep: async (ms: number) => void (t += ms) };
    const drainer = createDrainer({ engine, clock, project: 'p', current: plan, log: (l) => log.push(l), neverWriteUnder: opts.neverWriteUnder?.(dir) });
    return { conf, drainer, calls, log, clock: () => t };
  }

  it('drains, waits at most the graceful timeout for connections that stay open, puts back, and restores the bytes', async () => {
    const s = await setup(() => ({ exitCode: 0, stdout: '', stderr: '' }));
    const said = await s.drainer.drain('web-1');
    expect(readFileSync(s.conf, 'utf8')).toBe(markDown(CONF, new Set(['web-1'])).text);
    expect(s.calls.slice(0, 2)).toEqual(['n1: nginx -t', 'n1: nginx -s reload']);
    // What it returns is what it said (the rollout's `drain` step event carries it).
    expect(said).toEqual([
      `web-1: marked down in nginx (${path.basename(s.conf)}), nginx reloaded; draining.`,
      'web-1: nginx still has 1 connection(s) to it after 4 s (its graceful timeout): stopping it anyway; gunicorn finishes what it holds within its stop_grace_period.',
    ]);
    // The fake nginx keeps one connection open: the wait ends at the shorter of --graceful-timeout 4 and stop_grace_period 9s.
    expect(s.clock()).toBeGreaterThanOrEqual(4000);
    expect(s.clock()).toBeLessThan(4300);
    expect(s.log.join('\n')).toContain('web-1: nginx still has 1 connection(s) to it after 4 s');
    const before = s.calls.length;
    expect(await s.drainer.undrain('web-1')).toEqual([`web-1: back in nginx (${path.basename(s.conf)}), nginx reloaded.`]);
    expect(readFileSync(s.conf, 'utf8')).toBe(CONF);
    // Putting the original bytes back (what nginx ran before) is reloaded without another `nginx -t`.
    expect(s.calls.slice(before)).toEqual(['n1: nginx -s reload']);
    expect(s.calls.filter((c) => c.endsWith('reload')).length).toBe(2);
    await s.drainer.restoreAll();
    expect(readFileSync(s.conf, 'utf8')).toBe(CONF);
  });

  it('two drains asked at once (a batch) run one after the other, and each returns only its own lines', async () => {
    const s = await setup(() => ({ exitCode: 0, stdout: '', stderr: '' }));
    const [one, two] = await Promise.all([s.drainer.drain('web-1'), s.drainer.drain('web-2')]);
    const file = path.basename(s.conf);
    expect(one).toEqual([`web-1: marked down in nginx (${file}), nginx reloaded; draining.`, expect.stringMatching(/^web-1: nginx still has 1 connection\(s\)/)]);
    // web-2 has no running container here: nothing to wait for.
    expect(two).toEqual([`web-2: marked down in nginx (${file}), nginx reloaded; draining.`]);
    expect(readFileSync(s.conf, 'utf8')).toBe(markDown(CONF, new Set(['web-1', 'web-2'])).text);
    await s.drainer.restoreAll();
    expect(readFileSync(s.conf, 'utf8')).toBe(CONF);
  });

  it('an interrupt ends the wait for connections at once (the service is not recreated then)', async () => {
    const s = await setup(() => ({ exitCode: 0, stdout: '', stderr: '' }));
    const ctl = new AbortController();
    ctl.abort();
    await s.drainer.drain('web-1', ctl.signal);
    // Marked down and reloaded, but no 4 s wait on the connection the fake nginx keeps open.
    expect(readFileSync(s.conf, 'utf8')).toBe(markDown(CONF, new Set(['web-1'])).text);
    expect(s.clock()).toBeLessThan(1000);
    expect(s.log.join('\n')).not.toContain('still has');
    await s.drainer.restoreAll();
    expect(readFileSync(s.conf, 'utf8')).toBe(CONF);
  });

  it('a conf someone else changed during the rollout is left as it is from then on, and the line says what is left to do', async () => {
    const s = await setup(() => ({ exitCode: 0, stdout: '', stderr: '' }));
    await s.drainer.drain('web-1');
    const theirs = `${readFileSync(s.conf, 'utf8')}# ops: added during the rollout\n`;
    writeFileSync(s.conf, theirs);
    await s.drainer.undrain('web-1');
    await s.drainer.restoreAll();
    expect(readFileSync(s.conf, 'utf8')).toBe(theirs);
    expect(s.log.filter((l) => l.includes('someone else'))).toEqual([`${s.conf} was changed by someone else during the rollout: the tool leaves it as it is from now on; web-1 may still be marked down in it (lines ending in "# arena-deploy: drained"): remove the marks and reload nginx.`]);
  });

  it("never writes a conf inside the backups: one mounted from a backup's copy is not drained, and says so", async () => {
    const s = await setup(() => ({ exitCode: 0, stdout: '', stderr: '' }), { neverWriteUnder: (dir) => dir });
    await s.drainer.drain('web-1');
    expect(readFileSync(s.conf, 'utf8')).toBe(CONF);
    expect(s.calls).toEqual([]);
    expect(s.log).toEqual([`web-1: nginx mounts ${s.conf}, a backup's copy, and backups are never written: not drained.`]);
  });

  it('never reloads a conf that `nginx -t` rejects, and leaves the file as it was', async () => {
    const s = await setup((text) => (text.includes('down;') ? { exitCode: 1, stdout: '', stderr: 'nginx: [emerg] host not found in upstream "web-1:8000"\nnginx: configuration file /etc/nginx/nginx.conf test failed\n' } : { exitCode: 0, stdout: '', stderr: '' }));
    await s.drainer.drain('web-1');
    expect(s.calls).toEqual(['n1: nginx -t']);
    expect(readFileSync(s.conf, 'utf8')).toBe(CONF);
    expect(s.log).toEqual(['nginx: `nginx -t` rejects lb.conf (nginx: [emerg] host not found in upstream "web-1:8000"); not reloaded, the file is as it was.']);
  });

  it('restoreAll puts the original back after a failure left a service down', async () => {
    const s = await setup(() => ({ exitCode: 0, stdout: '', stderr: '' }));
    await s.drainer.drain('web-1');
    await s.drainer.restoreAll();
    expect(readFileSync(s.conf, 'utf8')).toBe(CONF);
    expect(s.calls.filter((c) => c.endsWith('reload')).length).toBe(2);
  });
});

describe('drainBoundMs', () => {
  it('is the shorter of gunicorn --graceful-timeout and stop_grace_period, 10 s without either', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'arena-deploy-test-'));
    try {
      const f = path.join(dir, 'c.yml');
      writeFileSync(f, 'name: p\nservices:\n  a:\n    image: x\n    command: ["gunicorn", "app", "--graceful-timeout", "60"]\n    stop_grace_period: 70s\n  b:\n    image: x\n    command: ["gunicorn", "app", "--graceful-timeout", "120"]\n  c:\n    image: x\n');
      const plan = await loadPlan({ files: [f], env: {} });
      expect(drainBoundMs(plan, 'a')).toBe(60_000);
      expect(drainBoundMs(plan, 'b')).toBe(10_000);
      expect(drainBoundMs(plan, 'c')).toBe(10_000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('restoreDrainedFiles (after a killed run)', () => {
  it('writes back, from the backup and in place, a file that differs only by drain marks, reloads the nginx mounting it, and leaves other edits alone', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'arena-deploy-test-'));
    try {
      const live = path.join(dir, 'lb.conf');
      const edited = path.join(dir, 'other.conf');
      const backupDir = path.join(dir, 'backup');
      mkdirSync(path.join(backupDir, 'files'), { recursive: true });
      writeFileSync(path.join(backupDir, 'files', 'lb.conf'), CONF);
      writeFileSync(path.join(backupDir, 'files', 'other.conf'), CONF);
      writeFileSync(live, markDown(CONF, new Set(['web-2'])).text);
      writeFileSync(edited, `${markDown(CONF, new Set(['web-1'])).text}# a person's edit\n`);
      const ino = statSync(live).ino;
      const sum = createHash('sha256').update(CONF).digest('hex');
      const file = (original: string, stored: string) => ({ original, stored, sha256: sum, bytes: CONF.length });
      const manifest = { project: 'p', referencedFiles: [file(live, 'files/lb.conf'), file(edited, 'files/other.conf')] } as unknown as BackupManifest;
      const calls: string[] = [];
      const engine = {
        listProject: async () => [{ id: 'n1', service: 'nginx', state: 'running' }],
        inspectRaw: async () => [{ Id: 'n1', Mounts: [{ Type: 'bind', Source: live, Destination: '/etc/nginx/conf.d/default.conf' }] }],
        exec: async (id: string, argv: readonly string[]) => {
          calls.push(`${id}: ${argv.join(' ')}`);
          return { exitCode: 0, stdout: '', stderr: '' };
        },
      } as unknown as EngineClient;
      const log: string[] = [];
      expect(await restoreDrainedFiles(backupDir, manifest, engine, (l) => log.push(l))).toEqual([live]);
      expect(readFileSync(live, 'utf8')).toBe(CONF);
      expect(statSync(live).ino).toBe(ino);
      expect(calls).toEqual(['n1: nginx -t', 'n1: nginx -s reload']);
      expect(readFileSync(edited, 'utf8')).toContain("# a person's edit");
      expect(log.join('\n')).toContain(`${edited} has drain marks of arena-deploy but other changes too: left as it is`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('reloadNginxOf', () => {
  it('reloads, after nginx -t, only the containers that mount one of the files under /etc/nginx/, and not when nginx -t fails', async () => {
    const calls: string[] = [];
    let testFails = false;
    const engine = {
      listProject: async () => [
        { id: 'n1', service: 'nginx', state: 'running' },
        { id: 'w1', service: 'web-1', state: 'running' },
        { id: 'x1', service: 'other', state: 'exited' },
      ],
      inspectRaw: async (ids: readonly string[]) =>
        ids.map((id) => ({ Id: id, Mounts: id === 'n1' ? [{ Type: 'bind', Source: '/p/lb.conf', Destination: '/etc/nginx/conf.d/default.conf' }] : [{ Type: 'bind', Source: '/p/lb.conf', Destination: '/srv/lb.conf' }] })),
      exec: async (id: string, argv: readonly string[]) => {
        calls.push(`${id}: ${argv.join(' ')}`);
        return { exitCode: argv[1] === '-t' && testFails ? 1 : 0, stdout: '', stderr: '' };
      },
    } as unknown as EngineClient;
    const log: string[] = [];
    expect(await reloadNginxOf(engine, 'p', ['/p/lb.conf', '/p/other.conf'], (l) => log.push(l))).toBe(1);
    expect(calls).toEqual(['n1: nginx -t', 'n1: nginx -s reload']);
    testFails = true;
    calls.length = 0;
    expect(await reloadNginxOf(engine, 'p', ['/p/lb.conf'], (l) => log.push(l))).toBe(0);
    expect(calls).toEqual(['n1: nginx -t']);
    expect(log).toEqual(['`nginx -t` fails in n1: nginx not reloaded.']);
  });
});
