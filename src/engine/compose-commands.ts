/** argv builders for the docker compose CLI: pure, tested for their exact arrays. */

/** Which compose project and files a command is about. */
export interface ComposeTarget {
  readonly project: string;
  readonly files: readonly string[];
  /** Given for restores from a backup, so relative paths resolve as in the original. */
  readonly projectDirectory?: string | undefined;
}

/** The compose project and files of a loaded plan. */
export function composeTargetOf(plan: { readonly project: string; readonly files: readonly string[]; readonly projectDirectory: string }): ComposeTarget {
  return { project: plan.project, files: plan.files, projectDirectory: plan.projectDirectory };
}

/** The program every compose command runs. */
export const DOCKER = 'docker';

function base(t: ComposeTarget): string[] {
  const argv = ['compose', '--project-name', t.project];
  if (t.projectDirectory) argv.push('--project-directory', t.projectDirectory);
  for (const f of t.files) argv.push('--file', f);
  return argv;
}

/** `docker compose version --short`: is compose v2 there? */
export function composeVersion(): string[] {
  return ['compose', 'version', '--short'];
}

/** `docker compose … config --quiet`: does compose accept the files? */
export function composeConfigQuiet(t: ComposeTarget): string[] {
  return [...base(t), 'config', '--quiet'];
}

/** `docker compose --dry-run … up -d --no-deps SERVICE…`: compose's own verdict on which containers it would recreate. */
export function composeUpDryRun(t: ComposeTarget, services: readonly string[]): string[] {
  const [compose, ...rest] = base(t);
  return [compose as string, '--dry-run', ...rest, 'up', '--detach', '--no-deps', '--no-build', '--pull', 'never', ...services];
}

/** `docker compose … up -d --no-deps --force-recreate SERVICE…`: replace exactly these services' containers. */
export function composeRecreate(t: ComposeTarget, services: readonly string[], opts: { timeoutS?: number | undefined } = {}): string[] {
  const argv = [...base(t), 'up', '--detach', '--no-deps', '--force-recreate', '--no-build', '--pull', 'never'];
  if (opts.timeoutS !== undefined) argv.push('--timeout', String(Math.ceil(opts.timeoutS)));
  return [...argv, ...services];
}

/** `docker compose … up -d` of the whole plan (first deploy, the demo's starting fleet). */
export function composeUpAll(t: ComposeTarget, opts: { wait?: boolean; timeoutS?: number } = {}): string[] {
  const argv = [...base(t), 'up', '--detach', '--no-build', '--pull', 'never', '--remove-orphans'];
  if (opts.wait) argv.push('--wait');
  if (opts.timeoutS !== undefined) argv.push('--wait-timeout', String(opts.timeoutS));
  return argv;
}

/** `docker compose -p P down --volumes --remove-orphans`: remove a whole project (demo --down, tests). */
export function composeDown(project: string, opts: { timeoutS?: number } = {}): string[] {
  const argv = ['compose', '--project-name', project, 'down', '--volumes', '--remove-orphans'];
  if (opts.timeoutS !== undefined) argv.push('--timeout', String(opts.timeoutS));
  return argv;
}

/** What compose would do to a service's container: keep it, recreate it, or create one. */
export type ComposeAction = 'running' | 'recreate' | 'create';

/** Parses the dry run's `Container NAME  Recreate|Running|Create` lines into container name → action. */
export function parseUpDryRun(output: string): Map<string, ComposeAction> {
  const out = new Map<string, ComposeAction>();
  for (const line of output.split('\n')) {
    const m = /Container (\S+)\s+(Recreate|Running|Create)\s*$/.exec(line);
    if (!m) continue;
    const name = m[1] as string;
    const action = m[2] === 'Running' ? 'running' : m[2] === 'Recreate' ? 'recreate' : 'create';
    if (!out.has(name)) out.set(name, action);
  }
  return out;
}
