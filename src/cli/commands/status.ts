/** `arena-deploy status`: the fleet as it runs now, per service, and any rollout that never finished. */
import path from 'node:path';
import { UsageError } from '../../errors.js';
import type { ContainerDetails, ResourceUsage } from '../../engine/engine-client.js';
import { openRollouts, readJournal, rollouts, journalFile, isUnfinished } from '../../rollout/journal.js';
import { naturalCompare } from '../../rollout/plan-rollout.js';
import { renderTable } from '../../report/table.js';
import { formatElapsed } from '../../plan/units.js';
import { compactNames } from '../../util/names.js';
import { stateDir } from '../../util/state-dir.js';
import type { Context } from '../context.js';

/** Flags of `status`. */
export interface StatusOptions {
  readonly project: string;
  readonly output: 'text' | 'json';
  readonly stateDir?: string | undefined;
  /** Redraw (terminal) or print one NDJSON snapshot (pipe, --output json) every `intervalMs` until a signal. */
  readonly watch?: boolean | undefined;
  readonly intervalMs?: number | undefined;
}

/** Default of --interval. */
export const DEFAULT_WATCH_INTERVAL_MS = 2000;

/** Clears a terminal and puts the cursor top left, before each redraw. */
const CLEAR_SCREEN = '\x1b[H\x1b[2J';

/** Memory use above this share of the limit is a warning, as in the guide's troubleshooting. */
export const MEMORY_WARNING_SHARE = 0.8;

/** One container as status reports it. */
export interface ServiceStatus {
  readonly service: string;
  readonly container: string;
  readonly id: string;
  readonly image: string;
  readonly configFiles: readonly string[];
  readonly configHash: string | null;
  readonly state: string;
  readonly health: string;
  readonly restartCount: number;
  readonly oomKilled: boolean;
  readonly exitCode: number;
  readonly memoryBytes: number | null;
  readonly memoryLimitBytes: number | null;
  /** CPU use as docker stats shows it (100 = one CPU), null when not running or not sampled. */
  readonly cpuPercent: number | null;
  readonly uptimeMs: number | null;
  readonly warnings: readonly string[];
}

const MB = 1024 ** 2;

function describe(d: ContainerDetails, usage: ResourceUsage | undefined, now: number): ServiceStatus {
  const memory = usage?.memoryBytes;
  const warnings: string[] = [];
  const limit = d.memoryLimitBytes > 0 ? d.memoryLimitBytes : undefined;
  if (memory !== undefined && limit && memory > MEMORY_WARNING_SHARE * limit) warnings.push(`memory at ${Math.round((memory / limit) * 100)} % of its limit`);
  if (d.oomKilled) warnings.push('OOMKilled');
  if (d.restartCount > 0) warnings.push(`restarted ${d.restartCount} time(s)`);
  if (d.hasHealthcheck && d.running && d.health !== 'healthy') warnings.push(`health ${d.health}`);
  if (!d.running) warnings.push(`${d.state} (exit code ${d.exitCode})`);
  const started = Date.parse(d.startedAt);
  return {
    service: d.service,
    container: d.name,
    id: d.id,
    image: d.image,
    configFiles: d.configFiles,
    configHash: d.configHash ?? null,
    state: d.state,
    health: d.hasHealthcheck ? d.health : 'no check',
    restartCount: d.restartCount,
    oomKilled: d.oomKilled,
    exitCode: d.exitCode,
    memoryBytes: memory ?? null,
    memoryLimitBytes: limit ?? null,
    cpuPercent: usage?.cpuPercent === undefined ? null : Math.round(usage.cpuPercent * 10) / 10,
    uptimeMs: d.running && Number.isFinite(started) ? Math.max(0, now - started) : null,
    warnings,
  };
}

/**
 * Prints the project's containers and flags what needs a look; exit 0, or 1 when a container is not running and healthy.
 * With --watch: again every interval until SIGINT/SIGTERM, then exit 0.
 */
export async function statusCommand(ctx: Context, opts: StatusOptions): Promise<number> {
  if (!opts.project) throw new UsageError('name the compose project with --project.');
  if (!opts.watch) {
    const snap = await snapshot(ctx, opts);
    ctx.io.stdout.write(opts.output === 'json' ? `${JSON.stringify(snap.json, null, 2)}\n` : snap.text);
    return snap.code;
  }
  // A reader gone (`| head -1`, `| grep -m1`): the watch ends with the pipe instead of looking on for no one.
  // (process.stdout is never destroyed by EPIPE: the error itself is the sign.)
  let gone = false;
  const onError = (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE' || err.code === 'EIO') gone = true;
  };
  ctx.io.stdout.on('error', onError);
  try {
    await watch(ctx, opts, () => gone || ctx.io.stdout.destroyed);
    return 0;
  } finally {
    ctx.io.stdout.off('error', onError);
  }
}

/** Looks again every interval until a signal, or until no one reads stdout any more. */
async function watch(ctx: Context, opts: StatusOptions, readerGone: () => boolean): Promise<void> {
  const interval = opts.intervalMs ?? DEFAULT_WATCH_INTERVAL_MS;
  // A terminal gets the table redrawn in place; a pipe or --output json one compact JSON object per line.
  const redraw = opts.output === 'text' && ctx.io.stdoutIsTTY;
  while (!ctx.signal.aborted && !readerGone()) {
    const t0 = ctx.clock.now();
    const snap = await snapshot(ctx, opts).catch((err: unknown) => {
      // Interrupted while the engine was being asked: the watch ends as asked.
      if (ctx.signal.aborted) return undefined;
      throw err;
    });
    if (!snap || ctx.signal.aborted) break;
    if (redraw) ctx.io.stdout.write(`${CLEAR_SCREEN}${snap.text}\nEvery ${formatElapsed(interval)}; Ctrl-C to stop.\n`);
    else ctx.io.stdout.write(`${JSON.stringify({ type: 'snapshot', time: new Date().toISOString(), ...snap.json })}\n`);
    // Give a closed pipe's EPIPE its turn before the next look.
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (readerGone()) break;
    await ctx.clock.sleep(Math.max(0, interval - (ctx.clock.now() - t0)), ctx.signal);
  }
}

/** One look at the fleet: the JSON object of --output json, the text table, and the exit code of a one-shot status. */
async function snapshot(ctx: Context, opts: StatusOptions): Promise<{ json: Record<string, unknown>; text: string; code: number }> {
  const state = stateDir(opts.stateDir, ctx.env);
  const info = await ctx.engine.ping();
  const read = await readJournal(state);
  const entries = rollouts(read.records).filter((e) => e.started.project === opts.project);
  const open = openRollouts(entries, opts.project);
  // No finish record and not known to be dead: running here, or on another host (which cannot be checked from here).
  const running = entries.filter((e) => !e.finished && !isUnfinished(e));
  const containers = await ctx.engine.listProject(opts.project);
  const now = Date.now();
  // One-shot stats take a second or two each (the engine samples twice): asked for all containers at once.
  // A container recreated meanwhile (a rollout runs) is gone by the time it is inspected: skipped, not an error.
  const inspected = await Promise.all(
    containers.map(async (c) => {
      const d = await ctx.engine.inspect(c.id).catch((err: unknown) => {
        if ((err as { statusCode?: number }).statusCode === 404) return undefined;
        throw err;
      });
      if (!d) return undefined;
      const usage = d.running ? await ctx.engine.resourceUsage(c.id).catch(() => undefined) : undefined;
      return describe(d, usage, now);
    }),
  );
  const services = inspected.filter((x): x is ServiceStatus => x !== undefined);
  services.sort((a, b) => naturalCompare(a.service, b.service) || naturalCompare(a.container, b.container));
  const lastEntry = entries[entries.length - 1];
  const unfinished = open.map((e) => ({ id: e.started.id, by: `${e.started.user}@${e.started.host}`, at: e.started.at, plan: e.started.plan, backup: e.backup ?? null, changed: e.changing.map((c) => c.service), reason: e.finished ? 'the engine stopped answering' : 'its process is gone' }));
  const healthy = services.length > 0 && services.every((s) => s.warnings.length === 0 || s.warnings.every((w) => w.startsWith('restarted') || w.startsWith('memory')));

  const code = healthy && unfinished.length === 0 ? 0 : 1;
  const json = { version: 1, project: opts.project, engine: info.endpoint, journal: journalFile(state), healthy, unfinished, running: running.map((e) => e.started.id), lastRollout: lastEntry ? { id: lastEntry.started.id, at: lastEntry.started.at, plan: lastEntry.started.plan, planHash: lastEntry.started.planHash, result: lastEntry.finished?.outcome ?? (isUnfinished(lastEntry) ? 'unfinished' : 'running') } : null, services };
  if (opts.output === 'json') return { json, text: '', code };
  const out: string[] = [];
  out.push(`Project ${opts.project} on ${info.endpoint}: ${services.length} container${services.length === 1 ? '' : 's'}.`);
  for (const u of unfinished) {
    out.push(`UNFINISHED: rollout ${u.id} by ${u.by} at ${u.at} to ${u.plan.map((f) => path.basename(f)).join(', ')} never finished (${u.reason}); it had changed ${u.changed.length ? compactNames(u.changed) : 'no service yet'}.`);
    out.push(`  \`arena-deploy rollout --resume --project ${opts.project}\` finishes it; \`arena-deploy rollback --project ${opts.project}\` restores ${u.backup ?? 'the newest backup'}.`);
  }
  for (const r of running) out.push(`A rollout is running: ${r.started.id} by ${r.started.user}@${r.started.host} since ${r.started.at}.`);
  if (lastEntry?.finished) out.push(`Last rollout: ${lastEntry.started.at} to ${lastEntry.started.plan.map((f) => path.basename(f)).join(', ')} (${lastEntry.started.planHash.slice(0, 12)}): ${lastEntry.finished.outcome}.`);
  if (services.length) {
    out.push('');
    out.push(
      renderTable(
        ['SERVICE', 'CONTAINER', 'CONFIG (FILES, HASH)', 'STATE', 'HEALTH', 'RESTARTS', 'OOM', 'EXIT', 'MEMORY / LIMIT', 'CPU', 'UPTIME', 'NEEDS A LOOK'],
        services.map((s) => [
          s.service,
          s.id.slice(0, 12),
          `${s.configFiles.map((f) => (f.includes(`${path.sep}backups${path.sep}`) ? `${path.basename(f)} (backup)` : path.basename(f))).join(' + ') || '-'} ${s.configHash ? s.configHash.slice(0, 12) : ''}`.trim(),
          s.state,
          s.health,
          String(s.restartCount),
          s.oomKilled ? 'yes' : 'no',
          String(s.exitCode),
          s.memoryBytes === null ? '-' : `${Math.round(s.memoryBytes / MB)}M / ${s.memoryLimitBytes ? `${Math.round(s.memoryLimitBytes / MB)}M (${Math.round((s.memoryBytes / s.memoryLimitBytes) * 100)} %)` : 'none'}`,
          s.cpuPercent === null ? '-' : `${s.cpuPercent.toFixed(1)} %`,
          s.uptimeMs === null ? '-' : formatElapsed(s.uptimeMs),
          s.warnings.join('; ') || '-',
        ]),
      ),
    );
  }
  return { json, text: `${out.join('\n')}\n`, code };
}
