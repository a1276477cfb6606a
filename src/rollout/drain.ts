/**
 * Draining a web service out of nginx before its container is stopped, and putting it back once the new one is healthy:
 * the service's `server` line in the nginx conf marked `down`, `nginx -t`, a graceful `nginx -s reload`, then a wait until
 * nginx holds no connection to the old container (bounded by the service's graceful timeout). The conf on disk is written
 * in place (see docs/zero-downtime.md for why) and restored byte for byte.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { EngineClient } from '../engine/engine-client.js';
import { gunicornOf } from '../plan/gunicorn.js';
import { parseNginx } from '../plan/nginx.js';
import type { Plan } from '../plan/types.js';
import type { BackupManifest } from '../backup/create-backup.js';
import type { Clock } from './health-wait.js';

/** What the tool appends to a `server` line it marked down; recovery after a crash looks for exactly this. */
export const DRAIN_MARK = ' # arena-deploy: drained';

/** The drain the executor calls: before a service's container is stopped, after its new one is healthy, and at the end. */
export interface Drainer {
  /**
   * Takes the service out of every nginx upstream that names it and waits for nginx's connections to it to end; a
   * no-op when none does. Returns the lines it said (none: no conf routes to it).
   */
  drain(service: string, signal?: AbortSignal): Promise<string[]>;
  /** Puts the service back (its `down` removed, nginx reloaded, so its new address is resolved too); returns the lines it said. */
  undrain(service: string): Promise<string[]>;
  /** Restores every conf it changed exactly as it was and reloads nginx (unless `reload` is false: the engine is gone): after a failure, an interrupt, or at the end. */
  restoreAll(opts?: { reload?: boolean }): Promise<void>;
}

/** A drainer that does nothing: no nginx routes to the rolled services, or `--no-drain`. */
export const noDrain: Drainer = { drain: async () => [], undrain: async () => [], restoreAll: async () => {} };

/** What the drainer needs. */
export interface DrainDeps {
  readonly engine: EngineClient;
  readonly clock: Clock;
  readonly project: string;
  /** The plan the fleet runs now: its bind-mounted nginx confs are the ones drained, its graceful timeouts bound the wait. */
  readonly current: Plan;
  /** One line of progress (stderr). */
  readonly log: (line: string) => void;
  /** Poll interval of the connection check (100 ms). */
  readonly pollMs?: number;
  /**
   * The engine runs on this host: nginx's connections are read from `/proc/<its pid>/net/tcp` here (its network
   * namespace's table) instead of a `docker exec … cat /proc/net/tcp` per look; an exec stays the fallback.
   */
  readonly hostProc?: boolean;
  /** Files under this folder (the backups) are never written: a conf mounted from a backup's copy is not drained. */
  readonly neverWriteUnder?: string | undefined;
}

/** One conf file the drainer has changed, with the bytes and the services it holds down. */
interface ConfState {
  readonly file: string;
  readonly original: Buffer;
  readonly down: Set<string>;
  /** The bytes the tool last wrote (or found, with an interrupted run's marks): anything else on disk is someone else's edit. */
  written?: Buffer;
  /** Changed by someone else during the rollout: the tool no longer writes it. */
  foreign?: boolean;
}

/** Where one nginx container mounts one conf file that names the service. */
interface Route {
  readonly file: string;
  readonly nginxId: string;
  readonly nginxService: string;
  readonly port: number;
  /** The nginx container's main process on the engine's host (0 when unknown). */
  readonly pid: number;
  /** Where the container mounts the file (`/etc/nginx/conf.d/default.conf`). */
  readonly destination: string;
}

/** Marks the `server HOST[:port] …;` lines of `service` down in a conf text; undefined when no single-line server names it. */
export function markDown(text: string, services: ReadonlySet<string>): { text: string; marked: Set<string> } {
  const marked = new Set<string>();
  // Only a line that is this one directive (a comment may follow): with another directive after the `;`, the mark's
  // comment would take that one out of nginx too.
  const re = /^([ \t]*server[ \t]+)([^\s:;{]+)((?::\d+)?(?:[ \t]+[^;#\n{]*?)?)[ \t]*;(?=[ \t]*(?:#[^\n]*)?\r?$)/gm;
  const out = text.replace(re, (line: string, lead: string, host: string, rest: string) => {
    if (!services.has(host)) return line;
    if (/(^|\s)down(\s|$)/.test(rest)) return line;
    marked.add(host);
    // Inserted right before and after the `;`, so that `unmarkDown` gives the original bytes back.
    return `${line.slice(0, -1)} down;${DRAIN_MARK}`;
  });
  return { text: out, marked };
}

/** Removes what `markDown` added (recovery after a killed run, when only the file on disk is left). */
export function unmarkDown(text: string): string {
  return text.split(` down;${DRAIN_MARK}`).join(';');
}

/** Writes a file's new content into the same inode: a single-file bind mount keeps seeing it (a rename would not). */
export async function writeInPlace(file: string, bytes: Buffer): Promise<void> {
  const handle = await fs.open(file, 'r+');
  try {
    await handle.write(bytes, 0, bytes.length, 0);
    await handle.truncate(bytes.length);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function sha256(b: Buffer | string): string {
  return createHash('sha256').update(b).digest('hex');
}

/** The longest a service's old container is given to finish what nginx sent it: its gunicorn --graceful-timeout or stop_grace_period, whichever is shorter. */
export function drainBoundMs(plan: Plan, service: string): number {
  const svc = plan.services[service];
  if (!svc) return 10_000;
  const graceful = gunicornOf(svc)?.gracefulTimeoutS;
  const stop = svc.stopGracePeriodMs ?? 10_000;
  return Math.min(stop, graceful !== undefined ? graceful * 1000 : stop);
}

/** Parses `/proc/net/tcp` and counts ESTABLISHED connections to one of `ips` on `port`. */
export function connectionsTo(procNetTcp: string, ips: readonly string[], port: number): number {
  const want = new Set(ips.map((ip) => ip.split('.').reverse().map((n) => Number(n).toString(16).padStart(2, '0')).join('').toUpperCase()));
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  let n = 0;
  for (const line of procNetTcp.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    const remote = cols[2];
    if (!remote || cols[3] !== '01') continue;
    const [ip, p] = remote.split(':');
    if (p === hexPort && ip && want.has(ip.toUpperCase())) n += 1;
  }
  return n;
}

interface RawMount {
  Type?: string;
  Source?: string;
  Destination?: string;
}
interface RawContainer {
  Id?: string;
  Mounts?: RawMount[];
  State?: { Pid?: number };
  NetworkSettings?: { Networks?: Record<string, { IPAddress?: string }> };
}

/** Builds the drainer of a rollout; it finds nginx and its confs each time, since nginx may be recreated meanwhile. */
export function createDrainer(deps: DrainDeps): Drainer {
  const confs = new Map<string, ConfState>();
  /** Every line said so far: a drain or put-back returns the ones said while it ran. */
  const said: string[] = [];
  const log = (line: string): void => {
    said.push(line);
    deps.log(line);
  };
  let queue: Promise<unknown> = Promise.resolve();
  /** Edits of one conf must not interleave (a batch drains several services at once). */
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = queue.then(fn, fn);
    queue = run.catch(() => undefined);
    return run;
  };

  /** The nginx confs (bind-mounted files of the current plan) whose upstreams name the service, with the nginx container mounting each. */
  const routesTo = async (service: string): Promise<Route[]> => {
    const running = (await deps.engine.listProject(deps.project)).filter((c) => c.state === 'running');
    const routes: Route[] = [];
    for (const c of running) {
      const svc = deps.current.services[c.service];
      if (!svc || svc.bindMounts.length === 0) continue;
      const [raw] = (await deps.engine.inspectRaw([c.id])) as RawContainer[];
      for (const m of raw?.Mounts ?? []) {
        if (m.Type !== 'bind' || !m.Source || !m.Destination?.startsWith('/etc/nginx/')) continue;
        // Only files the plan itself mounts: the tool reads and writes them on this machine.
        if (!svc.bindMounts.some((b) => path.resolve(b.source) === path.resolve(m.Source as string))) continue;
        const text = confs.get(m.Source)?.original.toString('latin1') ?? (await fs.readFile(m.Source, 'latin1').catch(() => undefined));
        if (text === undefined) continue;
        let servers;
        try {
          servers = parseNginx(text).upstreams.flatMap((u) => u.servers);
        } catch {
          continue;
        }
        const named = servers.find((s) => s.host === service);
        if (named) routes.push({ file: m.Source, nginxId: c.id, nginxService: c.service, port: named.port ?? 80, pid: raw?.State?.Pid ?? 0, destination: m.Destination });
      }
    }
    return routes;
  };

  /** Which nginx pids are processes of this host (checked once each by their cmdline). */
  const onHost = new Map<number, boolean>();
  const knowHost = async (r: Route): Promise<void> => {
    if (deps.hostProc && r.pid > 0 && !onHost.has(r.pid)) onHost.set(r.pid, /nginx/.test(await fs.readFile(`/proc/${r.pid}/cmdline`, 'utf8').catch(() => '')));
  };

  /** Someone else wrote the conf during the rollout: from now on the tool leaves it alone, and says what is left to do. */
  const foreignEdit = (state: ConfState): void => {
    if (state.foreign) return;
    state.foreign = true;
    const down = [...state.down];
    log(`${state.file} was changed by someone else during the rollout: the tool leaves it as it is from now on${down.length ? `; ${down.join(', ')} may still be marked down in it (lines ending in "${DRAIN_MARK.trim()}"): remove the marks and reload nginx` : ''}.`);
  };

  /** Writes the conf with its `down` set, checks it with `nginx -t`, reloads; puts the previous bytes back when the check fails. */
  const apply = async (state: ConfState, nginxIds: readonly string[], nginxService: string, seenBy: readonly Route[] = []): Promise<boolean> => {
    // Both callers (change, restoreAll) have already checked that the bytes on disk are the tool's own.
    const before = await fs.readFile(state.file);
    const next = state.down.size === 0 ? state.original : Buffer.from(markDown(state.original.toString('latin1'), state.down).text, 'latin1');
    if (!next.equals(before)) {
      await writeInPlace(state.file, next);
      state.written = next;
    }
    // What the container reads at the mount point must be what was written: a file replaced by a rename since nginx
    // started (or a release folder switched under it) is another inode, and editing the host path would drain nothing.
    // Read through the container's own root on this host; skipped where that cannot be read (a remote engine, no root).
    for (const r of deps.hostProc ? seenBy : []) {
      if (r.pid <= 0 || !onHost.get(r.pid)) continue;
      const seen = await fs.readFile(`/proc/${r.pid}/root${r.destination}`).catch(() => undefined);
      if (seen === undefined || seen.equals(next)) continue;
      await writeInPlace(state.file, before);
      state.written = before;
      log(`${nginxService}: does not see ${state.file} as written at ${r.destination} (the file was replaced since nginx started, or is another folder's): not drained, the file is as it was.`);
      return false;
    }
    // The original bytes are what nginx ran before the rollout: putting them back needs no `nginx -t` (one exec less
    // per service). Any other content is tested first.
    const known = next.equals(state.original);
    for (const id of known ? [] : nginxIds) {
      const test = await deps.engine.exec(id, ['nginx', '-t']);
      if (test.exitCode !== 0) {
        if (!next.equals(before)) {
          await writeInPlace(state.file, before);
          state.written = before;
        }
        const why = (test.stderr || test.stdout).split('\n').find((l) => /emerg|error|fail/i.test(l)) ?? `exit code ${test.exitCode}`;
        log(`${nginxService}: \`nginx -t\` rejects ${path.basename(state.file)} (${why.trim()}); not reloaded, the file is as it was.`);
        return false;
      }
    }
    for (const id of nginxIds) {
      const reload = await deps.engine.exec(id, ['nginx', '-s', 'reload']);
      if (reload.exitCode !== 0) {
        log(`${nginxService}: \`nginx -s reload\` failed (${(reload.stderr || reload.stdout).trim() || `exit code ${reload.exitCode}`}).`);
        return false;
      }
    }
    return true;
  };

  /** nginx's TCP table: read on this host when the engine is local (no exec per look), else inside the container. */
  const tcpTable = async (r: Route): Promise<string> => {
    if (deps.hostProc && r.pid > 0) {
      // The pid is the engine's view; it is this host's only if that process is nginx here too (not an engine in a VM).
      await knowHost(r);
      const text = onHost.get(r.pid) ? await fs.readFile(`/proc/${r.pid}/net/tcp`, 'utf8').catch(() => undefined) : undefined;
      if (text !== undefined) return text;
    }
    return (await deps.engine.exec(r.nginxId, ['cat', '/proc/net/tcp'])).stdout;
  };

  /** Waits until no nginx container holds an established connection to the service's containers, at most `boundMs`. */
  const waitIdle = async (service: string, routes: readonly Route[], boundMs: number, signal?: AbortSignal): Promise<void> => {
    const containers = (await deps.engine.listProject(deps.project)).filter((c) => c.service === service && c.state === 'running');
    if (containers.length === 0) return;
    const raws = (await deps.engine.inspectRaw(containers.map((c) => c.id))) as RawContainer[];
    const ips = raws.flatMap((r) => Object.values(r.NetworkSettings?.Networks ?? {}).map((n) => n.IPAddress ?? '')).filter(Boolean);
    if (ips.length === 0) return;
    const started = deps.clock.now();
    // The reload is a signal to nginx's master: give it a moment to start the new workers before counting.
    await deps.clock.sleep(deps.pollMs ?? 100, signal);
    for (;;) {
      // Interrupted: the rollout stops before this service is recreated; no need to wait for its connections.
      if (signal?.aborted) return;
      let open = 0;
      for (const r of routes) {
        open += connectionsTo(await tcpTable(r), ips, r.port);
      }
      const waited = deps.clock.now() - started;
      if (open === 0) return;
      if (waited >= boundMs) {
        log(`${service}: nginx still has ${open} connection(s) to it after ${Math.round(waited / 1000)} s (its graceful timeout): stopping it anyway; gunicorn finishes what it holds within its stop_grace_period.`);
        return;
      }
      await deps.clock.sleep(deps.pollMs ?? 100, signal);
    }
  };

  const change = async (service: string, down: boolean, signal?: AbortSignal): Promise<void> => {
    const routes = await routesTo(service);
    const byFile = new Map<string, Route[]>();
    for (const r of routes) byFile.set(r.file, [...(byFile.get(r.file) ?? []), r]);
    const drained: Route[] = [];
    for (const [file, rs] of byFile) {
      let state = confs.get(file);
      if (!state) {
        if (!down) continue;
        if (deps.neverWriteUnder && !path.relative(deps.neverWriteUnder, file).startsWith('..')) {
          log(`${service}: nginx mounts ${file}, a backup's copy, and backups are never written: not drained.`);
          continue;
        }
        let original = await fs.readFile(file);
        if (original.toString('latin1').includes(DRAIN_MARK)) {
          // Left by a run that was killed: its marks are not part of the conf.
          const found = original;
          original = Buffer.from(unmarkDown(original.toString('latin1')), 'latin1');
          confs.set(file, { file, original, down: new Set(), written: found });
          log(`${path.basename(file)} still has drain marks of an earlier, interrupted run: they are removed with this run's.`);
        }
        state = confs.get(file) ?? { file, original, down: new Set() };
        confs.set(file, state);
      }
      if (state.foreign) continue;
      if (!(await fs.readFile(file)).equals(state.written ?? state.original)) {
        foreignEdit(state);
        continue;
      }
      const had = state.down.has(service);
      if (had === down) continue;
      if (down) state.down.add(service);
      else state.down.delete(service);
      const marked = markDown(state.original.toString('latin1'), new Set([service])).marked.has(service);
      if (down && !marked) {
        state.down.delete(service);
        log(`${service}: its server line in ${path.basename(file)} is not a one-line \`server ${service}:PORT …;\` (or is down already): not drained.`);
        continue;
      }
      const nginxService = (rs[0] as Route).nginxService;
      for (const r of rs) await knowHost(r);
      const ok = await apply(state, rs.map((r) => r.nginxId), nginxService, down ? rs : []);
      if (!ok) {
        if (down) state.down.delete(service);
        continue;
      }
      if (down) drained.push(...rs);
      log(down ? `${service}: marked down in ${nginxService} (${path.basename(file)}), nginx reloaded; draining.` : `${service}: back in ${nginxService} (${path.basename(file)}), nginx reloaded.`);
    }
    if (down && drained.length) await waitIdle(service, drained, drainBoundMs(deps.current, service), signal);
  };

  /** Runs a drain or put-back (serially: no other's lines interleave) and returns the lines it said. */
  const saying = async (fn: () => Promise<void>): Promise<string[]> => {
    const from = said.length;
    await fn();
    return said.slice(from);
  };

  /** A drain that cannot be done must not fail the rollout: it goes on as it would without one, and says so. */
  const safely = async (service: string, down: boolean, signal?: AbortSignal): Promise<void> => {
    try {
      await change(service, down, signal);
    } catch (err) {
      log(`${service}: could not ${down ? 'drain it from' : 'put it back into'} nginx (${(err as Error).message}); going on${down ? ' without a drain' : ''}.`);
    }
  };

  return {
    drain: (service, signal) => serial(() => saying(() => safely(service, true, signal))),
    undrain: (service) => serial(() => saying(() => safely(service, false))),
    restoreAll: (opts = {}) =>
      serial(async () => {
        for (const state of confs.values()) {
          const wasDown = state.down.size > 0;
          try {
            const now = await fs.readFile(state.file).catch(() => undefined);
            if (state.foreign || (now && !now.equals(state.written ?? state.original) && !now.equals(state.original))) {
              foreignEdit(state);
              continue;
            }
            state.down.clear();
            if (now && now.equals(state.original) && !wasDown) continue;
            if (!now || !now.equals(state.original)) await writeInPlace(state.file, state.original);
            state.written = state.original;
          } catch (err) {
            log(`Could not restore ${state.file} (${(err as Error).message}): \`arena-deploy rollback\` puts it back from the backup.`);
            continue;
          }
          if (opts.reload === false) {
            log(`Restored ${path.basename(state.file)} as it was before the rollout; nginx was not reloaded (the engine does not answer): it routes as the file says after its next reload, which \`rollout --resume\` does.`);
            continue;
          }
          try {
            // Reload whichever nginx mounts the file now (it may have been recreated meanwhile).
            const ids = await nginxMounting(deps.engine, deps.project, state.file);
            const reloaded = ids.length > 0 && wasDown && (await apply(state, ids, 'nginx'));
            log(`Restored ${path.basename(state.file)} as it was before the rollout${reloaded ? ' and reloaded nginx' : ''}.`);
          } catch (err) {
            log(`Restored ${path.basename(state.file)} as it was before the rollout, but could not reload nginx (${(err as Error).message}): it routes as the file says after its next reload or restart.`);
          }
        }
        confs.clear();
      }),
  };
}

/** Running containers of the project that bind-mount `file` under /etc/nginx/. */
async function nginxMounting(engine: EngineClient, project: string, file: string): Promise<string[]> {
  const running = (await engine.listProject(project)).filter((c) => c.state === 'running');
  if (running.length === 0) return [];
  const raws = (await engine.inspectRaw(running.map((c) => c.id))) as RawContainer[];
  return raws.filter((r) => (r.Mounts ?? []).some((m) => m.Type === 'bind' && m.Source === file && m.Destination?.startsWith('/etc/nginx/'))).map((r) => r.Id ?? '').filter(Boolean);
}

/**
 * Reloads (after `nginx -t`) the nginx containers of the project that mount one of `files`: after a restore recreated
 * web services, so that nginx resolves their new addresses (it resolves upstream names only at start and reload).
 */
export async function reloadNginxOf(engine: EngineClient, project: string, files: readonly string[], log: (line: string) => void): Promise<number> {
  const ids = new Set<string>();
  for (const f of files) for (const id of await nginxMounting(engine, project, f)) ids.add(id);
  let reloaded = 0;
  for (const id of ids) {
    const test = await engine.exec(id, ['nginx', '-t']);
    if (test.exitCode !== 0) {
      log(`\`nginx -t\` fails in ${id.slice(0, 12)}: nginx not reloaded.`);
      continue;
    }
    if ((await engine.exec(id, ['nginx', '-s', 'reload'])).exitCode === 0) reloaded += 1;
  }
  return reloaded;
}

/**
 * After a killed rollout: every file of the backup that differs from its backed-up copy only by the drain's marks is
 * written back from the backup, byte for byte, and the nginx mounting it reloaded (after `nginx -t`). Returns what it restored.
 */
export async function restoreDrainedFiles(backupDir: string, manifest: BackupManifest, engine: EngineClient, log: (line: string) => void): Promise<string[]> {
  const restored: string[] = [];
  for (const f of manifest.referencedFiles) {
    const now = await fs.readFile(f.original).catch(() => undefined);
    if (!now || sha256(now) === f.sha256) continue;
    const text = now.toString('latin1');
    if (!text.includes(DRAIN_MARK)) continue;
    if (sha256(Buffer.from(unmarkDown(text), 'latin1')) !== f.sha256) {
      log(`${f.original} has drain marks of arena-deploy but other changes too: left as it is; compare it with ${path.join(backupDir, f.stored)}.`);
      continue;
    }
    await writeInPlace(f.original, await fs.readFile(path.join(backupDir, f.stored)));
    restored.push(f.original);
    for (const id of await nginxMounting(engine, manifest.project, f.original)) {
      const test = await engine.exec(id, ['nginx', '-t']);
      if (test.exitCode === 0) await engine.exec(id, ['nginx', '-s', 'reload']);
      else log(`\`nginx -t\` rejects the restored ${path.basename(f.original)}: nginx not reloaded.`);
    }
    log(`Restored ${f.original} from the backup (the interrupted rollout had marked services down in it) and reloaded nginx.`);
  }
  return restored;
}
