/** argv builders for the docker compose CLI: pure, tested for their exact arrays. */

/** Which compose project and files a command is about. */
export interface ComposeTarget {
  readonly project: string;
  readonly files: readonly string[];
  /** Given for restores from a backup, so relative paths resolve as in the original. */
  readonly projectDirectory?: string | undefined;
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

/** `docker compose … config --hash '*'`: compose's own per-service config hashes (`web-1 <sha>` lines). */
export function composeConfigHashes(t: ComposeTarget): string[] {
  return [...base(t), 'config', '--hash', '*'];
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

/** Parses `config --hash` output into service → hash. */
export function parseConfigHashes(stdout: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const m = /^(\S+)\s+([0-9a-f]{16,})$/.exec(line.trim());
    if (m) out.set(m[1] as string, m[2] as string);
  }
  return out;
}
