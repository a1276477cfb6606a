/** Shell-style globs (`web-*`, `web-?`, `{web,api}-*`) for choosing services. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i += 1) {
    const ch = glob[i] as string;
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else if (ch === '{') {
      const end = glob.indexOf('}', i);
      if (end < 0) re += '\\{';
      else {
        re += `(?:${glob.slice(i + 1, end).split(',').map(escape).join('|')})`;
        i = end;
      }
    } else re += escape(ch);
  }
  return new RegExp(`^${re}$`);
}

function escape(s: string): string {
  return s.replace(/[.+^${}()|[\]\\*?]/g, '\\$&');
}

/** Whether a name matches any of comma-separated globs. */
export function matchesAny(name: string, globs: string): boolean {
  return splitGlobs(globs).some((g) => globToRegExp(g).test(name));
}

/** Splits `web-*,nginx` into globs, keeping commas inside braces. */
export function splitGlobs(globs: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of globs) {
    if (ch === '{') depth += 1;
    if (ch === '}') depth -= 1;
    if (ch === ',' && depth === 0) {
      if (cur.trim()) out.push(cur.trim());
      cur = '';
    } else cur += ch;
  }
  if (cur.trim()) out.push(cur.trim());
  return out;
}
