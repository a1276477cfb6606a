/** Asking the operator on the terminal before a rollout changes anything. */
import { createInterface } from 'node:readline';
import { CancelledError, DeclinedError } from '../errors.js';

/** Whether to ask at all: only a person at a terminal is asked, never a pipe or CI, and never with --yes. */
export function shouldConfirm(o: { yes: boolean; stdinIsTTY: boolean; stderrIsTTY: boolean }): boolean {
  return !o.yes && o.stdinIsTTY && o.stderrIsTTY;
}

/** Whether an answer is a yes (y or yes, any case, spaces around ignored). */
export function isYes(answer: string): boolean {
  return /^\s*y(es)?\s*$/i.test(answer);
}

/**
 * Writes `question` to `output` and reads one line from `input`; resolves when it is a yes, else throws DeclinedError
 * (exit 1, "nothing was changed"). End of input is a no; a signal meanwhile throws CancelledError.
 */
export async function confirm(input: NodeJS.ReadableStream, output: { write(s: string): unknown }, question: string, signal: AbortSignal): Promise<void> {
  // terminal: false leaves the terminal in its normal (cooked) mode: Ctrl-C stays a SIGINT the CLI handles.
  const rl = createInterface({ input, terminal: false });
  output.write(question);
  try {
    const answer = await new Promise<string | undefined>((resolve) => {
      const onAbort = () => resolve(undefined);
      signal.addEventListener('abort', onAbort, { once: true });
      rl.once('line', (l) => resolve(l));
      rl.once('close', () => resolve(''));
    });
    if (signal.aborted) throw new CancelledError('Interrupted at the question; nothing was changed.');
    if (!isYes(answer ?? '')) throw new DeclinedError(`Not confirmed (answer: "${(answer ?? '').trim().slice(0, 20)}"): nothing was changed.`);
  } finally {
    rl.close();
  }
}
