/** Whether the tool prints ANSI colour: NO_COLOR, FORCE_COLOR, a terminal. Decided once, before listr2 loads. */

/**
 * NO_COLOR (any non-empty value) → never, even on a terminal; FORCE_COLOR=1..3 (or empty, or "true") → always, even
 * in a pipe; FORCE_COLOR=0 (or "false") → never; otherwise colour only when progress (stderr) is a terminal that is
 * not TERM=dumb. NO_COLOR wins over FORCE_COLOR.
 */
export function colorEnabled(env: NodeJS.ProcessEnv, stderrIsTTY: boolean): boolean {
  if (env['NO_COLOR']) return false;
  const force = env['FORCE_COLOR'];
  if (force !== undefined) {
    if (force === '' || force === 'true' || /^[1-3]$/.test(force)) return true;
    if (force === '0' || force === 'false') return false;
  }
  return stderrIsTTY && env['TERM'] !== 'dumb';
}

/**
 * Puts the decision where listr2's colour library (colorette) reads it when it loads: it only asks whether NO_COLOR
 * or FORCE_COLOR are present at all (so FORCE_COLOR=0 would force colour) and whether stdout, not stderr, is a TTY.
 */
export function applyColorDecision(env: NodeJS.ProcessEnv, stderrIsTTY: boolean): boolean {
  const on = colorEnabled(env, stderrIsTTY);
  if (on) {
    delete env['NO_COLOR'];
    if (!/^[1-3]$/.test(env['FORCE_COLOR'] ?? '')) env['FORCE_COLOR'] = '1';
  } else {
    delete env['FORCE_COLOR'];
    env['NO_COLOR'] = '1';
  }
  return on;
}
