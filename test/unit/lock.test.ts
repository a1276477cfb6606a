import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { acquireLock, checkLock } from '../../src/rollout/lock.js';
import { LockError } from '../../src/errors.js';

const DEAD = 2 ** 22 + 777;
const made: string[] = [];
afterAll(() => made.forEach((d) => rmSync(d, { recursive: true, force: true })));
function tempDir(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'lock-'));
  made.push(d);
  return d;
}

function holder(extra: object = {}) {
  return { pid: DEAD, user: 'ops', host: os.hostname(), since: '2026-12-01T08:00:00.000Z', plan: ['/srv/plan.yml'], rollout: 'r-old', ...extra };
}

describe('the lock', () => {
  it('is exclusive: a second taker is refused with who, since when, which plan; released, it can be taken again', async () => {
    const dir = tempDir();
    const a = await acquireLock(dir, 'arena', ['/p/a.yml'], { rollout: 'r1' });
    expect(JSON.parse(readFileSync(a.file, 'utf8'))).toMatchObject({ pid: process.pid, plan: ['/p/a.yml'], rollout: 'r1' });
    const refusal = acquireLock(dir, 'arena', ['/p/b.yml']);
    await expect(refusal).rejects.toBeInstanceOf(LockError);
    await expect(refusal).rejects.toThrow(new RegExp(`^Another rollout of arena is running: \\S+@\\S+ \\(pid ${process.pid}\\) since \\S+, plan /p/a\\.yml, rollout r1\\. Wait for it to finish\\.$`));
    // A live holder on this host is never taken over, not even with --break-lock.
    await expect(acquireLock(dir, 'arena', ['/p/b.yml'], { breakLock: true })).rejects.toThrow(/--break-lock only takes over a lock whose process is gone/);
    await a.release();
    expect(existsSync(a.file)).toBe(false);
    await (await acquireLock(dir, 'arena', ['/p/b.yml'])).release();
  });

  it('a stale lock is reported and refused, taken over with --break-lock or by the run that continues its rollout', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'arena.lock');
    writeFileSync(file, JSON.stringify(holder()));
    await expect(checkLock(dir, 'arena')).rejects.toThrow(`A rollout of arena that is no longer running holds a stale lock: ops@${os.hostname()} (pid ${DEAD}) since 2026-12-01T08:00:00.000Z, plan /srv/plan.yml, rollout r-old; its process is gone.`);
    await expect(acquireLock(dir, 'arena', ['/p.yml'], { takeOverFrom: 'r-other' })).rejects.toBeInstanceOf(LockError);
    const resumed = await acquireLock(dir, 'arena', ['/p.yml'], { takeOverFrom: 'r-old', rollout: 'r2' });
    expect(resumed.tookOver?.why).toBe(`its process (pid ${DEAD}) is gone and it belonged to the rollout being continued`);
    await resumed.release();
    writeFileSync(file, JSON.stringify(holder()));
    const broken = await acquireLock(dir, 'arena', ['/p.yml'], { breakLock: true });
    expect(broken.tookOver?.holder?.pid).toBe(DEAD);
    expect(JSON.parse(readFileSync(file, 'utf8')).pid).toBe(process.pid);
    await broken.release();
  });

  it('a lock from an earlier boot is stale even when its pid is taken by a live process now', async () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, 'arena.lock'), JSON.stringify(holder({ pid: process.pid, boot: 'an-earlier-boot' })));
    await expect(checkLock(dir, 'arena')).rejects.toThrow(/holds a stale lock/);
    const taken = await acquireLock(dir, 'arena', ['/p.yml'], { breakLock: true });
    expect(taken.tookOver?.why).toMatch(/is gone; --break-lock/);
    await taken.release();
  });

  it('a lock held from another host cannot be checked: refused, and taken over only with --break-lock', async () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, 'arena.lock'), JSON.stringify(holder({ host: 'jumpbox-2', pid: process.pid })));
    await expect(checkLock(dir, 'arena')).rejects.toThrow(/is running: ops@jumpbox-2 .* or pass --break-lock if it no longer runs on that host\.$/);
    await expect(checkLock(dir, 'arena', { breakLock: true })).resolves.toBeUndefined();
  });
});
