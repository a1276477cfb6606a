/** One rollout per project at a time: an exclusive lock file holding who, since when, for which plan and rollout. */
import { promises as fs, constants as fsc, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LockError } from '../errors.js';
import { bootId, processAlive } from './journal.js';

/** What a lock file says. */
export interface LockInfo {
  readonly pid: number;
  readonly user: string;
  readonly host: string;
  readonly since: string;
  readonly plan: readonly string[];
  /** The journal id of the rollout (or rollback) holding it. */
  readonly rollout?: string;
  /** The host's boot id: a lock from an earlier boot is stale whatever process has its pid now. */
  readonly boot?: string;
}

/** A held lock; release() removes it. */
export interface HeldLock {
  readonly file: string;
  /** The lock this one replaced (stale, or broken with --break-lock), for the CLI to say so. */
  readonly tookOver: { readonly holder: LockInfo | undefined; readonly why: string } | undefined;
  release(): Promise<void>;
}

/** "Took over the lock … of user@host (since …): why." — what rollout and rollback say when they replaced a lock. */
export function describeTakeOver(lock: HeldLock): string {
  const t = lock.tookOver;
  if (!t) return '';
  return `Took over the lock ${lock.file}${t.holder ? ` of ${t.holder.user}@${t.holder.host} (since ${t.holder.since})` : ''}: ${t.why}.`;
}

/** How a held lock may be taken over. */
export interface LockOptions {
  /** The journal id to record. */
  readonly rollout?: string | undefined;
  /** --break-lock: take over a stale lock, or one held from another host (whose process cannot be checked). */
  readonly breakLock?: boolean | undefined;
  /** Take over a stale lock of this rollout without --break-lock (resuming or rolling back that very rollout). */
  readonly takeOverFrom?: string | undefined;
}

function describeHolder(h: LockInfo): string {
  return `${h.user}@${h.host} (pid ${h.pid}) since ${h.since}, plan ${h.plan.join(', ')}${h.rollout ? `, rollout ${h.rollout}` : ''}`;
}

/** Takes the project's lock or throws LockError naming its holder (exit 4). */
export async function acquireLock(dir: string, project: string, plan: readonly string[], opts: LockOptions = {}): Promise<HeldLock> {
  const file = path.join(dir, `${project}.lock`);
  try {
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new LockError(`Cannot create the lock folder ${dir}: ${(err as NodeJS.ErrnoException).code === 'ENOTDIR' || (err as NodeJS.ErrnoException).code === 'EEXIST' ? 'a file is in the way' : (err as Error).message}. Nothing was changed.`, { cause: err });
  }
  const boot = bootId();
  const info: LockInfo = { pid: process.pid, user: os.userInfo().username, host: os.hostname(), since: new Date().toISOString(), plan, ...(opts.rollout ? { rollout: opts.rollout } : {}), ...(boot ? { boot } : {}) };
  let tookOver: HeldLock['tookOver'];
  for (let attempt = 0; ; attempt += 1) {
    try {
      const h = await fs.open(file, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600);
      try {
        await h.writeFile(`${JSON.stringify(info)}\n`);
        await h.sync();
      } finally {
        await h.close();
      }
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        await fs.rm(file, { force: true }).catch(() => {});
        throw new LockError(`Cannot write the lock file ${file}: ${(err as Error).message}. Nothing was changed.`, { cause: err });
      }
      if (attempt > 0) throw new LockError(`Another process took the lock ${file} at the same moment; nothing was changed.`);
      const holder = await readHolder(file);
      const why = takeOverReason(holder, opts);
      if (!why) throw refusal(project, file, holder, opts);
      // Replace it: a rename would not be exclusive, so remove, then create with O_EXCL again (a racer loses above).
      await fs.rm(file, { force: true });
      tookOver = { holder, why };
    }
  }
  // A forced exit (a second Ctrl-C) skips the finally blocks: the lock goes with the process all the same.
  const onExit = () => rmSync(file, { force: true });
  process.once('exit', onExit);
  return {
    file,
    tookOver,
    release: async () => {
      process.off('exit', onExit);
      await fs.rm(file, { force: true });
    },
  };
}

/** Throws the refusal acquireLock would, without creating anything: for checks that must not write. */
export async function checkLock(dir: string, project: string, opts: LockOptions = {}): Promise<void> {
  const file = path.join(dir, `${project}.lock`);
  try {
    await fs.access(file);
  } catch {
    return;
  }
  const holder = await readHolder(file);
  if (!takeOverReason(holder, opts)) throw refusal(project, file, holder, opts);
}

async function readHolder(file: string): Promise<LockInfo | undefined> {
  try {
    const h = JSON.parse(await fs.readFile(file, 'utf8')) as LockInfo;
    return typeof h?.pid === 'number' && typeof h.host === 'string' ? h : undefined;
  } catch {
    return undefined;
  }
}

/** Whether the process holding a lock is known to be gone: same host, no such pid. */
export function isStale(holder: LockInfo): boolean {
  return holder.host === os.hostname() && !processAlive(holder.pid, holder.boot);
}

function takeOverReason(holder: LockInfo | undefined, opts: LockOptions): string | undefined {
  if (!holder) return opts.breakLock ? 'the lock file was unreadable; --break-lock' : undefined;
  if (isStale(holder)) {
    if (opts.takeOverFrom && holder.rollout === opts.takeOverFrom) return `its process (pid ${holder.pid}) is gone and it belonged to the rollout being continued`;
    if (opts.breakLock) return `its process (pid ${holder.pid}) is gone; --break-lock`;
    return undefined;
  }
  if (holder.host !== os.hostname() && opts.breakLock) return `it is held from ${holder.host}, whose process cannot be checked from here; --break-lock`;
  return undefined;
}

function refusal(project: string, file: string, holder: LockInfo | undefined, opts: LockOptions): LockError {
  if (!holder) return new LockError(`Another rollout of ${project} holds the lock ${file}, which is unreadable: pass --break-lock if no rollout runs.`);
  if (isStale(holder)) {
    return new LockError(`A rollout of ${project} that is no longer running holds a stale lock: ${describeHolder(holder)}; its process is gone.`, {
      hints: [
        'The fleet may be part old, part new: `arena-deploy status` shows it.',
        '`arena-deploy rollout --resume` finishes that rollout, `arena-deploy rollback` restores its backup, and --break-lock takes the lock over for a new rollout.',
      ],
    });
  }
  if (holder.host === os.hostname() && opts.breakLock) {
    return new LockError(`Another rollout of ${project} is running: ${describeHolder(holder)}. --break-lock only takes over a lock whose process is gone; stop that process first.`);
  }
  return new LockError(`Another rollout of ${project} is running: ${describeHolder(holder)}. Wait for it to finish${holder.host !== os.hostname() ? ', or pass --break-lock if it no longer runs on that host' : ''}.`);
}
