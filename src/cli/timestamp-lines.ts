/** Progress for logs: every line that reaches the stream starts with a [HH:MM:SS] timestamp. */

/** The time prefix, as listr2's PRESET_TIMESTAMP prints it (local time of the machine). */
export function timestampOf(d: Date): string {
  const two = (n: number) => String(n).padStart(2, '0');
  return `[${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}]`;
}

/**
 * A write stream in front of `target` that starts each line with a timestamp (partial writes are joined: the prefix
 * goes only where a line begins). Writes go through synchronously, in order, so nothing is reordered against
 * direct writes to `target` made after it.
 */
export function timestampLines(target: { write(s: string): unknown }, now: () => Date = () => new Date()): NodeJS.WriteStream {
  let atStart = true;
  const stream = {
    isTTY: false,
    write(chunk: string | Uint8Array, ...rest: unknown[]): boolean {
      const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
      let out = '';
      for (const part of text.split(/(?<=\n)/)) {
        if (part === '') continue;
        if (atStart && part !== '\n') out += `${timestampOf(now())} `;
        out += part;
        atStart = part.endsWith('\n');
      }
      if (out) target.write(out);
      const cb = rest.find((r): r is () => void => typeof r === 'function');
      cb?.();
      return true;
    },
  };
  return stream as unknown as NodeJS.WriteStream;
}
