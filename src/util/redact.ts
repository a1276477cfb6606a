/** Keeping secrets out of everything the tool prints. */

const SECRET_KEY = /(SECRET|PASSW(OR)?D|PASSWD|PASSPHRASE|TOKEN|(^|_)KEY$|API_?KEY|ACCESS_?KEY|PRIVATE|CREDENTIAL|AUTH|SESSION_KEY|SALT|DSN)/i;

/** Whether an environment variable's name looks like it holds a secret. */
export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key);
}

/** The placeholder printed instead of a secret value. */
export const REDACTED = '[REDACTED]';

/** Replaces every occurrence of the given secret values in a text. */
export function redactText(text: string, secrets: Iterable<string>): string {
  let out = text;
  for (const s of maskable(secrets)) {
    out = out.split(s).join(REDACTED);
    // Also as it appears inside a JSON string (a quote or backslash in it escaped).
    const json = JSON.stringify(s).slice(1, -1);
    if (json !== s) out = out.split(json).join(REDACTED);
  }
  return out;
}

/**
 * The strings to mask, longest first: a secret that begins another (`hunter2`, `hunter2-long`) must not leave the rest
 * of the longer one showing. A multi-line secret (a PEM key) is also masked line by line, because logs and tables show
 * it a line at a time. Shorter than 4 characters, a value is too common to mask.
 */
function maskable(secrets: Iterable<string>): string[] {
  const all = new Set<string>();
  for (const s of secrets) {
    all.add(s);
    if (s.includes('\n')) for (const line of s.split(/\r?\n/)) all.add(line.trim());
  }
  return [...all].filter((s) => s.length >= 4).sort((a, b) => b.length - a.length);
}

/** Redacts `KEY=value` arguments whose key looks secret (for echoing argv). */
export function redactArgv(argv: readonly string[], secrets: Iterable<string> = []): string[] {
  const list = [...secrets];
  return argv.map((a) => {
    const eq = a.indexOf('=');
    if (eq > 0 && isSecretKey(a.slice(0, eq))) return `${a.slice(0, eq)}=${REDACTED}`;
    return redactText(a, list);
  });
}

/** The passwords inside URLs (`postgres://user:PASSWORD@db/app`), so they are masked wherever they appear on their own. */
export function credentialsIn(value: string): string[] {
  const out: string[] = [];
  for (const m of value.matchAll(/:\/\/[^/\s:@]*:([^@/\s]+)@/g)) {
    const pw = m[1] as string;
    out.push(pw);
    try {
      const decoded = decodeURIComponent(pw);
      if (decoded !== pw) out.push(decoded);
    } catch {
      // Not valid percent-encoding: the raw form is all there is.
    }
  }
  return out;
}
