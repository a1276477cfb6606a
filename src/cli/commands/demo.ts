/** `arena-deploy demo`: the main job on an embedded default, on any machine with an engine. */
import path from 'node:path';
import { packageRoot } from '../../util/package-root.js';
import { stateDir } from '../../util/state-dir.js';
import type { Context } from '../context.js';
import { rolloutCommand } from './rollout.js';

/** Flags of `demo`. */
export interface DemoOptions {
  readonly down?: boolean | undefined;
  readonly project: string;
  readonly stateDir?: string | undefined;
}

/** The host-sized twins the demo runs. */
export const DEMO_FILES = {
  original: path.join(packageRoot, 'fixtures', 'compose', 'arena', 'docker-compose.loadbalanced.yml'),
  optimized: path.join(packageRoot, 'fixtures', 'compose', 'arena', 'docker-compose.loadbalanced.optimized.yml'),
  buildScript: path.join(packageRoot, 'fixtures', 'images', 'build.sh'),
};

/** Builds the fixture images if missing, starts the original twin, then rolls it out to the optimized twin. */
export async function demoCommand(ctx: Context, opts: DemoOptions): Promise<number> {
  const info = await ctx.engine.ping();
  await ctx.compose.version();
  const err = ctx.io.stderr;
  if (opts.down) {
    if ((await ctx.engine.listProject(opts.project)).length === 0) {
      ctx.io.stdout.write(`Nothing to remove: no container of the demo project ${opts.project} exists on ${info.endpoint}.\n`);
      return 0;
    }
    err.write(`Removing the demo project ${opts.project} from ${info.endpoint}...\n`);
    await ctx.compose.down(opts.project);
    ctx.io.stdout.write(`Removed the demo project ${opts.project}: its containers, network and volumes. Its backups stay in ${path.join(stateDir(opts.stateDir, ctx.env), 'backups', opts.project)} (delete them by hand).\n`);
    return 0;
  }
  err.write('Building the fixture images (skipped when up to date)...\n');
  await ctx.runner.run('bash', [DEMO_FILES.buildScript], { onOutput: (c) => err.write(c), timeoutMs: 30 * 60_000 });
  err.write(`Starting the original twin as project ${opts.project}: 10 web services × 12 gunicorn workers × 6 threads, the plan that got SIGKILLed (scaled to this host)...\n`);
  await ctx.compose.upAll({ project: opts.project, files: [DEMO_FILES.original] }, { wait: true, timeoutS: 600 });
  err.write('The original fleet is up and healthy. Rolling it out to the optimized twin: 6 × 4 workers × 4 threads, health checks that tolerate 30 s probes.\n\n');
  // Asking "Roll out?" is for a person's own fleet; the demo's rollout is what the demo was asked to show.
  const code = await rolloutCommand(ctx, { files: [DEMO_FILES.optimized], project: opts.project, stateDir: opts.stateDir, yes: true });
  const prefix = ctx.env['ARENA_PORT_PREFIX'] ?? '80';
  ctx.io.stdout.write(`\nTry it: curl http://127.0.0.1:${prefix}80/ (nginx) or curl http://127.0.0.1:${prefix}01/health/ (web-1). \`arena-deploy demo --down${opts.project === 'arena-demo' ? '' : ` -p ${opts.project}`}${opts.stateDir ? ` --state-dir ${opts.stateDir}` : ''}\` removes the demo.\n`);
  return code;
}
