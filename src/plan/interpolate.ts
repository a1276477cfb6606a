/** Compose variable interpolation (`$VAR`, `${VAR}`, `${VAR:-d}`, `${VAR-d}`, `${VAR:?msg}`, `${VAR?msg}`, `${VAR:+alt}`, `${VAR+alt}`, `$$`). Pure. */

export type Environment = Readonly<Record<string, string | undefined>>;

/** Thrown for `${VAR:?message}` with VAR unset, and for malformed expressions. */
export class InterpolationError extends Error {}

/** Replaces variables in one string, as compose does for every string value of a file. */
export function interpolate(text: string, env: Environment): string {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const ch = text[i];
    if (ch !== '$') {
      out += ch;
      i += 1;
      continue;
    }
    const next = text[i + 1];
    if (next === '$') {
      out += '$';
      i += 2;
      continue;
    }
    if (next === '{') {
      const end = findClosingBrace(text, i + 2);
      if (end < 0) throw new InterpolationError('invalid interpolation format: missing "}"');
      out += expand(text.slice(i + 2, end), env);
      i = end + 1;
      continue;
    }
    const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i + 1));
    if (m) {
      out += env[m[0]] ?? '';
      i += 1 + m[0].length;
      continue;
    }
    out += ch;
    i += 1;
  }
  return out;
}

function findClosingBrace(text: string, from: number): number {
  let depth = 1;
  for (let j = from; j < text.length; j += 1) {
    if (text[j] === '{') depth += 1;
    else if (text[j] === '}') {
      depth -= 1;
      if (depth === 0) return j;
    }
  }
  return -1;
}

function expand(body: string, env: Environment): string {
  const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([\s\S]*))?$/.exec(body);
  if (!m) throw new InterpolationError(`invalid interpolation format: "\${${body.length > 40 ? `${body.slice(0, 40)}…` : body}}" is not a variable expression`);
  const name = m[1] as string;
  const op = m[2];
  const arg = m[3] ?? '';
  const value = env[name];
  const set = value !== undefined;
  const nonEmpty = set && value !== '';
  switch (op) {
    case undefined:
      return value ?? '';
    case ':-':
      return nonEmpty ? (value as string) : interpolate(arg, env);
    case '-':
      return set ? (value as string) : interpolate(arg, env);
    case ':+':
      return nonEmpty ? interpolate(arg, env) : '';
    case '+':
      return set ? interpolate(arg, env) : '';
    case ':?':
      if (!nonEmpty) throw new InterpolationError(`required variable ${name} is missing a value${arg ? `: ${arg}` : ''}`);
      return value as string;
    case '?':
      if (!set) throw new InterpolationError(`required variable ${name} is missing a value${arg ? `: ${arg}` : ''}`);
      return value as string;
    default:
      throw new InterpolationError(`invalid interpolation format in "\${${name}${op}…}"`);
  }
}

/** Parses a compose `.env` / `env_file` text into key/value pairs (comments, `export`, quotes); `env` interpolates unquoted and double-quoted values, as compose does. */
export function parseDotEnv(text: string, env?: Environment): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    // compose's dotenv parser also takes YAML-style `KEY: value` lines.
    const m = /^(?:export\s+)?([^=\s:]+)\s*=\s*(.*)$/.exec(line) ?? /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*):\s+(.*)$/.exec(line);
    if (!m) continue;
    let value = m[2] as string;
    let literal = false;
    const q = /^(["'])((?:\\.|(?!\1).)*)\1\s*(#.*)?$/.exec(value);
    if (q) {
      value = q[2] as string;
      if (q[1] === '"') value = value.replace(/\\n/g, '\n').replace(/\\"/g, '"');
      else literal = true;
    } else {
      value = value.replace(/\s+#.*$/, '');
    }
    if (env && !literal) {
      try {
        value = interpolate(value, { ...env, ...out });
      } catch {
        // Left as written: compose would fail on it, and `config --quiet` says so.
      }
    }
    out[m[1] as string] = value;
  }
  return out;
}
