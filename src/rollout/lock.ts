/** One rollout per project at a time: an exclusive lock file holding who, since when and for which plan. */
import { promises as fs, constants as fsc, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LockError } from '../errors.js';

/** What a lock file says. */
export interface LockInfo {
  readonly pid: number;
  readonly user: string;
  readonly host: string;
  readonly since: string;
  readonly plan: readonly string[];
}

/** A held lock; release() removes it. */
export interface HeldLock {
  readonly file: string;
  release(): Promise<void>;
}

/** Takes the project's lock or throws LockError naming its holder. */
export async function acquireLock(dir: string, project: string, plan: readonly string[]): Promise<HeldLock> {
  const file = path.join(dir, `${project}.lock`);
  try {
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new LockError(`Cannot create the lock folder ${dir}: ${(err as NodeJS.ErrnoException).code === 'ENOTDIR' || (err as NodeJS.ErrnoException).code === 'EEXIST' ? 'a file is in the way' : (err as Error).message}. Nothing was changed.`, { cause: err });
  }
  const info: LockInfo = { pid: process.pid, user: os.userInfo().username, host: os.hostname(), since: new Date().toISOString(), plan };
  try {
    const h = await fs.open(file, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600);
    await h.writeFile(`${JSON.stringify(info)}\n`);
    await h.close();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new LockError(`Cannot create the lock file ${file}: ${(err as Error).message}.`, { cause: err });
    let holder: LockInfo | undefined;
    try {
      holder = JSON.parse(await fs.readFile(file, 'utf8')) as LockInfo;
    } catch {
      holder = undefined;
    }
    if (!holder) throw new LockError(`Another rollout of ${project} holds the lock ${file} (unreadable). Remove it if no rollout runs.`);
    const stale = holder.host === os.hostname() && !alive(holder.pid);
    throw new LockError(
      `Another rollout of ${project} holds the lock: ${holder.user}@${holder.host} (pid ${holder.pid}) since ${holder.since}, plan ${holder.plan.join(', ')}${stale ? `; that process is gone, so the lock is stale: remove ${file} if no rollout runs` : ''}.`,
    );
  }
  // A forced exit (a second Ctrl-C) skips the finally blocks: the lock goes with the process all the same.
  const onExit = () => rmSync(file, { force: true });
  process.once('exit', onExit);
  return {
    file,
    release: async () => {
      process.off('exit', onExit);
      await fs.rm(file, { force: true });
    },
  };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
