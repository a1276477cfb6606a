/** The CLI: argv → command, the composition root, and the one place that maps errors to output and exit codes. */
// First: the colour decision must be in process.env before listr2 (colorette) loads.
import './color-setup.js';
import { readFileSync } from 'node:fs';
import { isatty } from 'node:tty';
import path from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { ArenaError, CancelledError, CommandFailedError, ExitCode, UsageError } from '../errors.js';
import type { EngineTarget } from '../engine/target.js';
import { redactText } from '../util/redact.js';
import { packageRoot } from '../util/package-root.js';
import { collect, durationOption, intOption, numberOption, sizeOption } from './options.js';
import type { Context, IO } from './context.js';
import { DEFAULT_PLAN } from './default-plan.js';
// The commands, the engine clients, listr2, dockerode and execa are imported when a command runs, not for --help,
// --version or a usage error: start-up stays at what commander and node itself cost (docs/benchmarks.md).

/** What main knows before building a command's context; `contextFlag` is the global --context. */
export interface ContextBase {
  readonly io: IO;
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
  readonly debug: boolean;
  readonly signal: AbortSignal;
  readonly secrets: Set<string>;
  readonly contextFlag?: string | undefined;
}

/** Test seam: build the context from parts, or let main build the real one. */
export interface MainOverrides {
  readonly io?: IO;
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  readonly makeContext?: (base: ContextBase) => Context | Promise<Context>;
}

function version(): string {
  try {
    return (JSON.parse(readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** Plan files come as arguments or as -f flags; mixed, their order would be ambiguous. */
function planFiles(args: readonly string[], flags: readonly string[] | undefined): string[] {
  if (args.length && flags?.length) throw new UsageError('give the plan files either as arguments or with -f, not both (their merge order would be ambiguous).');
  return [...args, ...(flags ?? [])];
}

async function realContext(base: ContextBase): Promise<Context> {
  const [{ DockerEngineClient }, { DockerComposeClient }, { ExecaProcessRunner }, { childEnv, resolveEngineTarget }, { systemClock }] = await Promise.all([
    import('../engine/docker-engine-client.js'),
    import('../engine/compose-client.js'),
    import('../engine/process-runner.js'),
    import('../engine/target.js'),
    import('../rollout/health-wait.js'),
  ]);
  const debugLine = base.debug ? (line: string) => base.io.stderr.write(`debug: ${line}\n`) : () => {};
  // One engine target for dockerode and every docker / compose child; resolved on first use, so commands that never
  // reach the engine do not fail on a bad context.
  let resolved: EngineTarget | undefined;
  const target = () => (resolved ??= resolveEngineTarget({ contextFlag: base.contextFlag, env: base.env }));
  // A context named on the command line is checked at once: an unknown one is a usage error even where the engine is optional (validate).
  if (base.contextFlag !== undefined) target();
  const children = () => {
    try {
      return childEnv(target(), base.env);
    } catch {
      // Unresolvable: the engine client reports why on its first call, before any compose runs against anything.
      return undefined;
    }
  };
  const runner = new ExecaProcessRunner(debugLine, () => base.secrets, children);
  const engine = new DockerEngineClient(target, { sshEnv: () => base.env, debug: debugLine });
  return { ...base, engine, compose: new DockerComposeClient(runner), runner, clock: systemClock };
}

/** Runs the CLI with argv (without node and script); resolves to the exit code. */
export async function main(argv: readonly string[], overrides: MainOverrides = {}): Promise<number> {
  const io: IO = overrides.io ?? { stdout: process.stdout, stderr: process.stderr, stdoutIsTTY: Boolean(process.stdout.isTTY), stderrIsTTY: Boolean(process.stderr.isTTY), stdinIsTTY: isatty(0), get stdin() { return process.stdin; } };
  const env = overrides.env ?? process.env;
  const cwd = overrides.cwd ?? process.cwd();
  const debug = argv.includes('--debug') || env['ARENA_DEPLOY_DEBUG'] === '1';
  const secrets = new Set<string>();
  const controller = new AbortController();
  let signals = 0;
  let received: NodeJS.Signals | undefined;
  /** 128 + the signal's number, as a shell reports a process killed by it. */
  const interruptedCode = () => (received === 'SIGTERM' ? ExitCode.terminated : received === 'SIGHUP' ? ExitCode.hangup : ExitCode.interrupted);
  /** What the first signal does, as the running command says it (status --watch just stops). */
  let firstSignalNote = 'stopping; the service in flight and every service already changed are rolled back before exit (signal again to leave at once).';
  const onSignal = (sig: NodeJS.Signals) => {
    signals += 1;
    received ??= sig;
    if (signals === 1) {
      io.stderr.write(`\n${sig}: ${firstSignalNote}\n`);
      // The reason is the signal's name: an --output json report gives the exit code the CLI will.
      controller.abort(sig);
    } else {
      io.stderr.write(`${sig} again: leaving now; a docker compose already started finishes on its own, and the fleet may be part old, part new (see \`docker compose ps\`); an nginx conf with services marked down stays so until \`arena-deploy rollback\` or \`rollout --resume\` puts it back.\n`);
      process.exit(interruptedCode());
    }
  };
  const installSignals = !overrides.io;
  // A closed stdout or stderr (`| head`, an ssh session gone) must not kill a rollout halfway: writes are dropped instead.
  const onStreamError = (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE' && err.code !== 'EIO') throw err;
  };
  if (installSignals) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    // The jump box's ssh session dropping: the same as SIGTERM (the rollout is stopped and rolled back), exit 129.
    process.on('SIGHUP', onSignal);
    process.stdout.on('error', onStreamError);
    process.stderr.on('error', onStreamError);
  }
  const make = overrides.makeContext ?? realContext;
  let ctxCache: Promise<Context> | undefined;
  const ctx = () => (ctxCache ??= Promise.resolve().then(() => make({ io, env, cwd, debug, signal: controller.signal, secrets, contextFlag: program.opts<{ context?: string }>().context })));

  let code: number = ExitCode.ok;
  const program = new Command('arena-deploy')
    .description('Rolling deployments for docker compose fleets: back up, validate, update web containers one at a time, watch their health, roll back on failure.')
    .version(version(), '-V, --version', 'print the version')
    .option('--debug', 'print every command run and stack traces of errors')
    .option('--context <name>', 'docker context of the engine to use (default: DOCKER_HOST, else DOCKER_CONTEXT, else the docker CLI\'s current context, else the local socket)')
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
      outputError: () => {},
    });

  program
    .command('rollout')
    .description('move the live fleet to the target plan, one web service at a time, rolling back on failure')
    .argument('[plan...]', `target compose file(s) (default: ${DEFAULT_PLAN})`)
    .option('-f, --file <file>', 'target compose file; repeatable, merged in order like docker compose -f', collect)
    .option('--current <file>', 'compose file(s) the fleet runs now (default: from the containers\' labels); repeatable', collect)
    .option('-p, --project <name>', 'compose project name (default: the plan\'s name, else its folder)')
    .option('--services <glob>', 'services rolled one at a time (default: x-arena-deploy.services or "web-*"); comma-separated globs')
    .option('--include <service>', 'also recreate this stateful service (redis…) when it differs, or remove a non-rolled service the target drops; repeatable', collect)
    .addOption(new Option('--parallelism <n>', 'services updated at once (default: deploy.update_config.parallelism, else 1)').argParser(intOption('--parallelism', 1, 100)))
    .addOption(new Option('--delay <duration>', 'pause between batches (default: deploy.update_config.delay, else 0s)').argParser(durationOption('--delay')))
    .addOption(new Option('--monitor <duration>', 'watch each new container this long after it is healthy (default: deploy.update_config.monitor, else 5s; 0s skips)').argParser(durationOption('--monitor')))
    .addOption(new Option('--health-timeout <duration>', 'deadline to become healthy (default: start_period + retries × (interval + timeout))').argParser(durationOption('--health-timeout', 1000)))
    .option('--force', 'start even if current web containers are unhealthy or the plan analysis finds errors')
    .option('--dry-run', 'print the steps and the changes per service, change nothing')
    .addOption(new Option('--output <format>', 'text; json: NDJSON events and a final report on stdout (docs/report.md), with --dry-run one object; markdown (with --dry-run): the review for a pull request').choices(['text', 'json', 'markdown']).default('text'))
    .option('--offline', 'with --dry-run and --current: no engine at all; the fleet is assumed to run the current files')
    .addOption(new Option('--host-cpus <n>', 'with --offline: host vCPUs for the analysis (default: x-arena-deploy.host)').argParser(numberOption('--host-cpus', 0.01, 4096)))
    .addOption(new Option('--host-memory <size>', 'with --offline: host memory for the analysis, e.g. 64g (default: x-arena-deploy.host)').argParser(sizeOption('--host-memory', 256 * 1024 ** 2)))
    .option('--state-dir <dir>', 'where backups and locks are kept (default: $ARENA_DEPLOY_STATE_DIR, else $XDG_STATE_HOME/arena-deploy, else ~/.local/state/arena-deploy)')
    .option('--resume', 'finish the rollout that was interrupted (killed, or the engine went away): its plan, its backup, the services it had left')
    .option('--break-lock', 'take over a lock whose process is gone (or held from another host), and start although an earlier rollout never finished')
    .option('--no-drain', 'do not take a web service out of nginx (upstream `down` + reload) before its container is stopped')
    .option('--no-probe', "wait for Docker's health status only: do not also probe each new container's health URL on its published port (local engine)")
    .addOption(new Option('--engine-timeout <duration>', 'how long engine calls are retried when the engine stops answering mid-rollout, before a safe stop (0s: no retries)').argParser(durationOption('--engine-timeout')).default(60_000, '60s'))
    .option('-y, --yes', 'do not ask "Roll out? [y/N]" on a terminal (without a terminal it is never asked)')
    .action(async (plan: string[], o: Record<string, unknown>) => {
      code = await (await import('./commands/rollout.js')).rolloutCommand(await ctx(), {
        resume: Boolean(o['resume']),
        breakLock: Boolean(o['breakLock']),
        engineTimeoutMs: o['engineTimeout'] as number,
        files: planFiles(plan, o['file'] as string[] | undefined),
        current: (o['current'] as string[] | undefined) ?? [],
        project: o['project'] as string | undefined,
        services: o['services'] as string | undefined,
        include: (o['include'] as string[] | undefined) ?? [],
        parallelism: o['parallelism'] as number | undefined,
        delayMs: o['delay'] as number | undefined,
        monitorMs: o['monitor'] as number | undefined,
        healthTimeoutMs: o['healthTimeout'] as number | undefined,
        force: Boolean(o['force']),
        dryRun: Boolean(o['dryRun']),
        stateDir: o['stateDir'] as string | undefined,
        output: o['output'] as 'text' | 'json' | 'markdown',
        offline: Boolean(o['offline']),
        host: { cpus: o['hostCpus'] as number | undefined, memoryBytes: o['hostMemory'] as number | undefined },
        yes: Boolean(o['yes']),
        drain: o['drain'] !== false,
        probe: o['probe'] !== false,
      });
    });

  program
    .command('validate')
    .description('analyze a plan the way an operator would: memory, CPU, health checks, gunicorn and nginx settings (exit 3 on errors)')
    .argument('[plan...]', `compose file(s) to analyze (default: ${DEFAULT_PLAN})`)
    .option('-f, --file <file>', 'compose file; repeatable, merged in order', collect)
    .option('--against <file>', 'the plan it replaces, shown side by side; repeatable', collect)
    .option('-p, --project <name>', 'compose project name')
    .addOption(new Option('--host-cpus <n>', 'host vCPUs (default: the engine\'s, else x-arena-deploy.host)').argParser(numberOption('--host-cpus', 0.01, 4096)))
    .addOption(new Option('--host-memory <size>', 'host memory, e.g. 64g (default: the engine\'s, else x-arena-deploy.host)').argParser(sizeOption('--host-memory', 256 * 1024 ** 2)))
    .addOption(new Option('--output <format>', 'text or json').choices(['text', 'json']).default('text'))
    .action(async (plan: string[], o: Record<string, unknown>) => {
      code = await (await import('./commands/validate.js')).validateCommand(await ctx(), {
        files: planFiles(plan, o['file'] as string[] | undefined),
        against: (o['against'] as string[] | undefined) ?? [],
        project: o['project'] as string | undefined,
        host: { cpus: o['hostCpus'] as number | undefined, memoryBytes: o['hostMemory'] as number | undefined },
        output: o['output'] as 'text' | 'json',
      });
    });

  program
    .command('rollback')
    .description('bring the fleet back to the newest (or a chosen) backup, after verifying its sha256 sums')
    .option('-p, --project <name>', 'compose project (required unless --to names the backup)')
    .option('--to <backup-dir>', 'the backup folder to restore (default: the newest of the project)')
    .addOption(new Option('--timeout <duration>', 'how long the services may take to be healthy again').argParser(durationOption('--timeout', 1000)).default(300_000, '5m'))
    .option('--state-dir <dir>', 'where backups, locks and the journal are kept (as for rollout)')
    .option('--break-lock', 'take over a lock whose process is gone (or held from another host); the lock of the interrupted rollout being undone is taken over without it')
    .addOption(new Option('--output <format>', 'text, or json: NDJSON events and a final report on stdout (docs/report.md)').choices(['text', 'json']).default('text'))
    .action(async (o: Record<string, unknown>) => {
      code = await (await import('./commands/rollback.js')).rollbackCommand(await ctx(), {
        project: o['project'] as string | undefined,
        to: o['to'] as string | undefined,
        stateDir: o['stateDir'] as string | undefined,
        timeoutS: Math.ceil((o['timeout'] as number) / 1000),
        breakLock: Boolean(o['breakLock']),
        output: o['output'] as 'text' | 'json',
      });
    });

  program
    .command('history')
    .description('list past rollouts from the journal: when, who, plan and its hash, result, duration, services changed')
    .option('-p, --project <name>', 'only this compose project')
    .addOption(new Option('--output <format>', 'text or json').choices(['text', 'json']).default('text'))
    .option('--state-dir <dir>', 'where the journal is kept (as for rollout)')
    .action(async (o: Record<string, unknown>) => {
      code = await (await import('./commands/history.js')).historyCommand(await ctx(), { project: o['project'] as string | undefined, output: o['output'] as 'text' | 'json', stateDir: o['stateDir'] as string | undefined });
    });

  program
    .command('status')
    .description('per service: container, config, health, restarts, OOMKilled, exit code, memory against its limit, uptime; and any rollout that never finished (exit 1 when something needs a look)')
    .requiredOption('-p, --project <name>', 'compose project')
    .addOption(new Option('--output <format>', 'text or json').choices(['text', 'json']).default('text'))
    .option('--state-dir <dir>', 'where the journal is kept (as for rollout)')
    .option('-w, --watch', 'look again every --interval until Ctrl-C (exit 0): redrawn on a terminal, one NDJSON snapshot per line otherwise')
    .addOption(new Option('--interval <duration>', 'time between looks with --watch').argParser(durationOption('--interval', 200)).default(2000, '2s'))
    .action(async (o: Record<string, unknown>) => {
      if (o['watch']) firstSignalNote = 'stopping the watch.';
      code = await (await import('./commands/status.js')).statusCommand(await ctx(), { project: o['project'] as string, output: o['output'] as 'text' | 'json', stateDir: o['stateDir'] as string | undefined, watch: Boolean(o['watch']), intervalMs: o['interval'] as number });
    });

  program
    .command('demo')
    .description('build the fixture images, start the original twin fleet and roll it out to the optimized twin')
    .option('--down', 'remove everything the demo created')
    .option('-p, --project <name>', 'compose project of the demo', 'arena-demo')
    .option('--state-dir <dir>', 'where backups and locks are kept')
    .action(async (o: Record<string, unknown>) => {
      code = await (await import('./commands/demo.js')).demoCommand(await ctx(), { down: Boolean(o['down']), project: o['project'] as string, stateDir: o['stateDir'] as string | undefined });
    });

  try {
    await program.parseAsync([...argv], { from: 'user' });
    return code;
  } catch (err) {
    const exit = report(err, io, debug, secrets);
    return err instanceof CancelledError ? interruptedCode() : exit;
  } finally {
    if (installSignals) {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      process.off('SIGHUP', onSignal);
    }
  }
}

function report(err: unknown, io: IO, debug: boolean, secrets: Set<string>): number {
  const say = (s: string) => io.stderr.write(`${redactText(s, secrets)}\n`);
  if (err instanceof CommanderError) {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return ExitCode.ok;
    // commander puts its suggestion on a line of its own: one sentence, one line.
    const lines = err.message.replace(/^error: /, '').split('\n').map((l) => l.trim()).filter(Boolean);
    const message = lines.join(' ').replace(/ \(Did you mean (\S+)\?\)$/, ': did you mean $1?');
    say(`error: ${message}${/[.?]$/.test(message) ? '' : '.'} See \`arena-deploy --help\`.`);
    return ExitCode.usage;
  }
  if (err instanceof ArenaError) {
    say(`error: ${err.message}`);
    for (const h of err.hints) say(`  ${h}`);
    if (debug) say(stackChain(err));
    return err instanceof UsageError ? ExitCode.usage : err.exitCode;
  }
  if (err instanceof CommandFailedError) {
    say(`error: ${err.message}${err.firstStderrLine ? `: ${err.firstStderrLine}` : ''}`);
    if (debug) say(stackChain(err));
    return ExitCode.failed;
  }
  const e = err instanceof Error ? err : new Error(String(err));
  say(`error: internal error: ${e.message}. This is a bug in arena-deploy; ${debug ? 'please report it with the trace below.' : 'run again with --debug for the stack trace, and report it.'}`);
  if (debug) say(stackChain(e));
  return ExitCode.failed;
}

function stackChain(err: Error): string {
  const parts: string[] = [];
  let cur: unknown = err;
  while (cur instanceof Error) {
    parts.push(cur.stack ?? String(cur));
    cur = (cur as { cause?: unknown }).cause;
  }
  return parts.join('\ncaused by: ');
}
