/** Where the tool keeps its state (backups, locks): --state-dir, ARENA_DEPLOY_STATE_DIR, XDG_STATE_HOME or ~/.local/state. */
import os from 'node:os';
import path from 'node:path';

/** The state folder for this run. */
export function stateDir(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  if (flag) return path.resolve(flag);
  if (env['ARENA_DEPLOY_STATE_DIR']) return path.resolve(env['ARENA_DEPLOY_STATE_DIR']);
  const xdg = env['XDG_STATE_HOME'];
  return path.join(xdg ? path.resolve(xdg) : path.join(os.homedir(), '.local', 'state'), 'arena-deploy');
}
