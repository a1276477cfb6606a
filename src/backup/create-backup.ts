/** Snapshots of the current config: compose files, the files they reference, and the live `docker inspect`. */
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs, constants as fsc } from 'node:fs';
import path from 'node:path';
import { ArenaError, ExitCode } from '../errors.js';
import type { Plan } from '../plan/types.js';
import type { ContainerSummary } from '../engine/engine-client.js';
import { DRAIN_MARK, unmarkDown } from '../rollout/drain.js';

/** Version of manifest.json's format. */
export const BACKUP_MANIFEST_VERSION = 1;

/** One file kept in a backup. */
export interface BackupFile {
  /** Absolute path where it lived. */
  readonly original: string;
  /** Path inside the backup folder. */
  readonly stored: string;
  readonly sha256: string;
  readonly bytes: number;
}

/** manifest.json: what a backup holds, with the sums that prove it is whole. */
export interface BackupManifest {
  readonly version: typeof BACKUP_MANIFEST_VERSION;
  readonly tool: 'arena-deploy';
  readonly createdAt: string;
  readonly project: string;
  /** The project directory of the backed-up deployment: restores run with it, so relative paths resolve as before. */
  readonly projectDirectory: string;
  readonly composeFiles: readonly BackupFile[];
  readonly referencedFiles: readonly BackupFile[];
  /** Referenced paths that were not copied (directories too large, sockets…), with why. */
  readonly skipped: ReadonlyArray<{ readonly path: string; readonly reason: string }>;
  readonly inspect: BackupFile;
  /** With a remote engine: the bind-mounted files as they were on the engine's host (original = the path there). */
  readonly remoteFiles?: readonly BackupFile[];
  /** Remote bind-mounted files that could not be read, with why. */
  readonly remoteSkipped?: ReadonlyArray<{ readonly path: string; readonly reason: string }>;
  readonly containers: ReadonlyArray<{ readonly service: string; readonly id: string; readonly image: string; readonly configHash: string | undefined }>;
}

/** A written backup. */
export interface Backup {
  readonly dir: string;
  readonly manifest: BackupManifest;
}

/** The backup could not be written: nothing has been changed (exit 4). */
export class BackupError extends ArenaError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, ExitCode.preflight, options);
  }
}

/** What to back up. */
export interface CreateBackupInput {
  /** Backups of all projects live under this folder, one subfolder per project. */
  readonly root: string;
  readonly current: Plan;
  readonly live: readonly ContainerSummary[];
  readonly inspect: (ids: readonly string[]) => Promise<unknown[]>;
  /** With a remote engine: reads the current plan's bind-mounted files on the engine's host. */
  readonly remoteFiles?: () => Promise<ReadonlyArray<{ readonly path: string; readonly data?: Buffer; readonly reason?: string }>>;
  readonly now?: Date;
}

const MAX_DIR_FILES = 2000;
const MAX_DIR_BYTES = 64 * 1024 * 1024;

/** The folder name of a backup: a sortable UTC timestamp. */
export function backupStamp(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.(\d{3})Z$/, '$1Z');
}

/** Writes a new backup folder (mode 0700, files 0600); manifest.json last, so a backup without one is incomplete. Never overwrites. */
export async function createBackup(input: CreateBackupInput): Promise<Backup> {
  const now = input.now ?? new Date();
  const projectRoot = path.join(input.root, input.current.project);
  let dir: string;
  try {
    await fs.mkdir(projectRoot, { recursive: true, mode: 0o700 });
    dir = await makeUniqueDir(projectRoot, backupStamp(now));
  } catch (err) {
    throw new BackupError(`Cannot create a backup folder under ${projectRoot}: ${reason(err)}. Nothing was changed.`, { cause: err });
  }
  try {
    const composeFiles: BackupFile[] = [];
    const usedNames = new Set<string>();
    for (const file of input.current.files) {
      let name = path.basename(file);
      for (let i = 2; usedNames.has(name); i += 1) name = `${i}-${path.basename(file)}`;
      usedNames.add(name);
      composeFiles.push(await copyInto(file, dir, path.join('compose', name)));
    }
    const referenced = new Set<string>();
    // compose reads .env of the project folder for interpolation: part of the config too.
    const dotEnv = path.join(input.current.projectDirectory, '.env');
    if (await fs.stat(dotEnv).then((st) => st.isFile(), () => false)) referenced.add(dotEnv);
    for (const svc of Object.values(input.current.services)) {
      for (const f of svc.envFiles) referenced.add(f);
      for (const m of svc.bindMounts) referenced.add(m.source);
    }
    const referencedFiles: BackupFile[] = [];
    const skipped: Array<{ path: string; reason: string }> = [];
    for (const ref of [...referenced].sort()) {
      const stored = path.join('files', storedName(ref, input.current.projectDirectory));
      let st;
      try {
        st = await fs.stat(ref);
      } catch (err) {
        skipped.push({ path: ref, reason: `cannot be read: ${reason(err)}` });
        continue;
      }
      if (st.isFile()) referencedFiles.push(await copyInto(ref, dir, stored));
      else if (st.isDirectory()) {
        const files = await listTree(ref);
        const bytes = files.reduce((n, f) => n + f.bytes, 0);
        if (files.length > MAX_DIR_FILES || bytes > MAX_DIR_BYTES) {
          skipped.push({ path: ref, reason: `directory of ${files.length} files / ${bytes} bytes is too large to copy` });
          continue;
        }
        for (const f of files) referencedFiles.push(await copyInto(f.path, dir, path.join(stored, path.relative(ref, f.path))));
      } else skipped.push({ path: ref, reason: 'not a regular file or directory' });
    }
    let remote: { remoteFiles: BackupFile[]; remoteSkipped: Array<{ path: string; reason: string }> } | undefined;
    if (input.remoteFiles) {
      remote = { remoteFiles: [], remoteSkipped: [] };
      for (const f of await input.remoteFiles()) {
        if (f.data) remote.remoteFiles.push(await writeNew(dir, path.join('remote', f.path.replace(/^\/+/, '')), f.data, f.path));
        else remote.remoteSkipped.push({ path: f.path, reason: f.reason ?? 'cannot be read' });
      }
    }
    const ids = input.live.map((c) => c.id);
    const raw = await input.inspect(ids);
    const inspect = await writeNew(dir, 'inspect.json', Buffer.from(`${JSON.stringify(raw, null, 2)}\n`), '(docker inspect)');
    const manifest: BackupManifest = {
      version: BACKUP_MANIFEST_VERSION,
      tool: 'arena-deploy',
      createdAt: now.toISOString(),
      project: input.current.project,
      projectDirectory: input.current.projectDirectory,
      composeFiles,
      referencedFiles,
      skipped,
      inspect,
      ...(remote ?? {}),
      containers: input.live.map((c) => ({ service: c.service, id: c.id, image: c.image, configHash: c.configHash })),
    };
    await writeNew(dir, 'manifest.json', Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`), '(manifest)');
    return { dir, manifest };
  } catch (err) {
    // An incomplete backup is of no use and may hold the last free space: it goes; earlier backups are not touched.
    const removed = await fs.rm(dir, { recursive: true, force: true }).then(() => true, () => false);
    if (err instanceof BackupError) throw err;
    throw new BackupError(`Cannot write the backup in ${dir}: ${reason(err)}${removed ? '; the incomplete folder was removed' : ''}. Nothing was changed.`, { cause: err });
  }
}

async function makeUniqueDir(parent: string, stamp: string): Promise<string> {
  for (let i = 0; i < 100; i += 1) {
    const name = i === 0 ? stamp : `${stamp}-${randomBytes(3).toString('hex')}`;
    const dir = path.join(parent, name);
    try {
      await fs.mkdir(dir, { mode: 0o700 });
      return dir;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  throw new Error('no free backup folder name');
}

/** Keeps paths under the project directory relative; others are flattened under `abs/`. */
function storedName(file: string, projectDirectory: string): string {
  const rel = path.relative(projectDirectory, file);
  if (rel && !rel.startsWith('..') && !path.isAbsolute(rel)) return path.join('project', rel);
  return path.join('abs', file.replace(/^\/+/, ''));
}

async function copyInto(source: string, dir: string, stored: string): Promise<BackupFile> {
  const data = await fs.readFile(source);
  return writeNew(dir, stored, data, source);
}

async function writeNew(dir: string, stored: string, data: Buffer, original: string): Promise<BackupFile> {
  const target = path.join(dir, stored);
  await fs.mkdir(path.dirname(target), { recursive: true, mode: 0o700 });
  // O_EXCL: a file in a backup is never overwritten.
  const handle = await fs.open(target, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  return { original, stored, sha256: sha256(data), bytes: data.length };
}

/** sha256 of bytes, hex. */
export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

async function listTree(root: string): Promise<Array<{ path: string; bytes: number }>> {
  const out: Array<{ path: string; bytes: number }> = [];
  const walk = async (d: string) => {
    for (const entry of await fs.readdir(d, { withFileTypes: true })) {
      const p = path.join(d, entry.name);
      if (entry.isDirectory()) await walk(p);
      else if (entry.isFile()) out.push({ path: p, bytes: (await fs.stat(p)).size });
      if (out.length > MAX_DIR_FILES) return;
    }
  };
  await walk(root);
  return out;
}

function reason(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'EROFS') return 'the file system is read-only';
  if (e?.code === 'ENOSPC') return 'no space left on the device';
  if (e?.code === 'EACCES' || e?.code === 'EPERM') return 'permission denied';
  return e?.message ?? String(err);
}

/** Reads a backup's manifest and checks every sum; throws when the backup is incomplete or altered. */
export async function verifyBackup(dir: string): Promise<BackupManifest> {
  let manifest: BackupManifest;
  try {
    manifest = JSON.parse(await fs.readFile(path.join(dir, 'manifest.json'), 'utf8')) as BackupManifest;
  } catch (err) {
    throw new ArenaError(`The backup ${dir} has no readable manifest.json: it is incomplete.`, ExitCode.validation, { cause: err });
  }
  if (manifest?.version !== BACKUP_MANIFEST_VERSION) throw new ArenaError(`The backup ${dir} has manifest version ${String(manifest?.version)}, which this arena-deploy does not know.`, ExitCode.validation);
  const file = (f: unknown) => typeof (f as BackupFile)?.stored === 'string' && typeof (f as BackupFile).sha256 === 'string' && !path.isAbsolute((f as BackupFile).stored) && !(f as BackupFile).stored.split(/[\\/]/).includes('..');
  const complete =
    typeof manifest.project === 'string' && manifest.project !== '' && typeof manifest.projectDirectory === 'string' && typeof manifest.createdAt === 'string' &&
    Array.isArray(manifest.composeFiles) && manifest.composeFiles.length > 0 && manifest.composeFiles.every(file) &&
    Array.isArray(manifest.referencedFiles) && manifest.referencedFiles.every(file) && Array.isArray(manifest.skipped) && file(manifest.inspect);
  if (!complete) throw new ArenaError(`The backup ${dir} has a manifest.json without the fields a restore needs: it is incomplete or not an arena-deploy backup.`, ExitCode.validation);
  if (manifest.remoteFiles !== undefined && !(Array.isArray(manifest.remoteFiles) && manifest.remoteFiles.every(file))) {
    throw new ArenaError(`The backup ${dir} has a manifest.json whose remoteFiles are malformed: it is incomplete or not an arena-deploy backup.`, ExitCode.validation);
  }
  for (const f of [...manifest.composeFiles, ...manifest.referencedFiles, ...(manifest.remoteFiles ?? []), manifest.inspect]) {
    let data: Buffer;
    try {
      data = await fs.readFile(path.join(dir, f.stored));
    } catch {
      throw new ArenaError(`The backup ${dir} is incomplete: ${f.stored} is missing.`, ExitCode.validation);
    }
    if (sha256(data) !== f.sha256) throw new ArenaError(`The backup ${dir} was altered: the sha256 of ${f.stored} does not match its manifest.`, ExitCode.validation);
  }
  return manifest;
}

/**
 * Where a restore resolves the backup's relative paths: the original project folder while the files there still
 * match the backup (so paths stay as the operator knows them), else the backup's own copies under files/project,
 * so a file edited since the backup (an env file, the nginx conf) does not leak into the restored service.
 */
export async function restoreDirectory(dir: string, manifest: BackupManifest): Promise<{ projectDirectory: string; fromBackup: boolean }> {
  // A backup taken against a remote engine: bind-mount sources resolve on the engine's host, where the backup's local
  // copies are not, and which the tool never changes; the original folder is the only one that means the same there.
  if (manifest.remoteFiles !== undefined) return { projectDirectory: manifest.projectDirectory, fromBackup: false };
  let drifted = false;
  for (const f of manifest.referencedFiles) {
    // The drain's own marks (a rollout that fails while a service is marked down rolls back before they are removed)
    // are not an edit: the original folder is still the one to restore from.
    const now = await fs.readFile(f.original).then((b) => sha256(b.includes(DRAIN_MARK) ? Buffer.from(unmarkDown(b.toString('latin1')), 'latin1') : b), () => undefined);
    if (now !== f.sha256) drifted = true;
  }
  const insideProject = (p: string) => !path.relative(manifest.projectDirectory, p).startsWith('..');
  const copyable = manifest.skipped.every((x) => !insideProject(x.path));
  if (drifted && copyable) return { projectDirectory: path.join(dir, 'files', 'project'), fromBackup: true };
  return { projectDirectory: manifest.projectDirectory, fromBackup: false };
}
