/**
 * Bind-mounted files with a remote engine: their sources are paths on the engine's host, not on the machine that runs
 * the tool. Before anything is recreated, each file the target plan bind-mounts is read on the engine's host through
 * the engine itself (a throwaway container, so it works over every transport) and compared by sha256 with the local
 * copy; the current plan's remote versions are read the same way for the backup.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import type { EngineClient } from '../engine/engine-client.js';
import type { Plan } from '../plan/types.js';

/** One bind-mounted source and the images that can read it (the service's own first). */
export interface BoundFile {
  readonly source: string;
  readonly services: readonly string[];
  readonly images: readonly string[];
}

/** A bind-mounted file whose remote copy is not the one the plan expects: one sentence each. */
export interface HostFileProblem {
  readonly source: string;
  readonly message: string;
}

/** What the remote host holds now, for the backup. */
export interface RemoteFile {
  readonly path: string;
  readonly data?: Buffer;
  /** Why it could not be read, when data is missing. */
  readonly reason?: string;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** The bind-mount sources of these services, once each, with the images that may read them. */
export function boundFiles(plan: Plan, services: readonly string[], extraImages: readonly string[] = []): BoundFile[] {
  const bySource = new Map<string, { services: string[]; images: string[] }>();
  for (const name of services) {
    const svc = plan.services[name];
    if (!svc) continue;
    for (const m of svc.bindMounts) {
      const e = bySource.get(m.source) ?? { services: [], images: [] };
      e.services.push(name);
      if (svc.image && !e.images.includes(svc.image)) e.images.push(svc.image);
      bySource.set(m.source, e);
    }
  }
  return [...bySource].sort(([a], [b]) => a.localeCompare(b)).map(([source, e]) => ({ source, services: e.services, images: [...e.images, ...extraImages.filter((i) => !e.images.includes(i))] }));
}

async function readerImage(engine: EngineClient, images: readonly string[]): Promise<string | undefined> {
  for (const image of images) if (await engine.imageExists(image)) return image;
  return undefined;
}

/**
 * Compares each bind-mounted regular file of the target services with its copy on the engine's host; returns the
 * mismatches (nothing when all match). Directories and sockets are not compared. `readLocal` is the local side (a seam
 * for the one-machine test where the engine's host and this machine are the same).
 */
export async function verifyHostFiles(
  engine: EngineClient,
  files: readonly BoundFile[],
  readLocal: (p: string) => Promise<Buffer | undefined> = readRegularFile,
): Promise<HostFileProblem[]> {
  if (!engine.readHostFile) return [];
  const problems: HostFileProblem[] = [];
  for (const f of files) {
    const local = await readLocal(f.source);
    if (!local) continue;
    const image = await readerImage(engine, f.images);
    const who = f.services.join(', ');
    if (!image) {
      problems.push({ source: f.source, message: `Cannot check the file ${f.source} that ${who} bind-mounts on the engine's host: none of the images ${f.images.join(', ')} is there to read it with.` });
      continue;
    }
    const remote = await engine.readHostFile(image, f.source);
    const localSum = sha(local);
    if (!remote.found) {
      problems.push({ source: f.source, message: `The file ${f.source} that ${who} bind-mounts is not usable on the engine's host: ${remote.reason} (local sha256 ${localSum}); copy it there first. Nothing was changed.` });
    } else if (sha(remote.data) !== localSum) {
      problems.push({ source: f.source, message: `The file ${f.source} that ${who} bind-mounts differs on the engine's host (sha256 there ${sha(remote.data)}, here ${localSum}): copy this version there first. Nothing was changed.` });
    }
  }
  return problems;
}

/** The current versions, on the engine's host, of the files the current plan bind-mounts (for the backup). */
export async function readHostFiles(engine: EngineClient, files: readonly BoundFile[]): Promise<RemoteFile[]> {
  if (!engine.readHostFile) return [];
  const out: RemoteFile[] = [];
  for (const f of files) {
    const image = await readerImage(engine, f.images);
    if (!image) {
      out.push({ path: f.source, reason: `no image to read it with (${f.images.join(', ')})` });
      continue;
    }
    const r = await engine.readHostFile(image, f.source);
    out.push(r.found ? { path: f.source, data: r.data } : { path: f.source, reason: r.reason });
  }
  return out;
}

async function readRegularFile(p: string): Promise<Buffer | undefined> {
  try {
    if (!(await fs.stat(p)).isFile()) return undefined;
    return await fs.readFile(p);
  } catch {
    return undefined;
  }
}

/** What a rollout against a remote engine checks and backs up: the target's files, and the current ones to keep. */
export async function remoteFileCheck(
  engine: EngineClient,
  input: { readonly target: Plan; readonly current: Plan; readonly updated: readonly string[]; readonly live: ReadonlyArray<{ readonly service: string; readonly image: string }> },
): Promise<{ problems: HostFileProblem[]; remoteFiles: () => Promise<RemoteFile[]> }> {
  const liveImages = [...new Set(input.live.map((c) => c.image))];
  const problems = await verifyHostFiles(engine, boundFiles(input.target, input.updated, liveImages));
  const currentServices = [...new Set(input.live.map((c) => c.service))];
  return { problems, remoteFiles: () => readHostFiles(engine, boundFiles(input.current, currentServices, liveImages)) };
}
