/** Where the reports go: NDJSON events and the final report on stdout, the markdown summary to $GITHUB_STEP_SUMMARY. */
import { createHash } from 'node:crypto';
import { constants as fsc, promises as fs, readFileSync } from 'node:fs';
import { REPORT_VERSION, type EventSink, type RolloutEventBody } from '../report/events.js';
import { redactDeep, type FinalReport } from '../report/json-report.js';
import { renderStepSummary } from '../report/step-summary.js';
import { ExitCode } from '../errors.js';

/** sha256 of each plan file as it is on disk now (null when it cannot be read). */
export function planFileSums(files: readonly string[], read: (f: string) => Buffer = (f) => readFileSync(f)): Array<{ path: string; sha256: string | null }> {
  return files.map((f) => {
    try {
      return { path: f, sha256: createHash('sha256').update(read(f)).digest('hex') };
    } catch {
      return { path: f, sha256: null };
    }
  });
}

/** Writes events and the final report as NDJSON: one object per line, every string redacted. */
export class NdjsonWriter {
  private reported = false;

  constructor(
    private readonly out: { write(s: string): unknown },
    readonly rollout: string,
    private readonly redact: (s: string) => string,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** The sink the executor is given. */
  readonly sink: EventSink = (event: RolloutEventBody) => {
    // version, type, time and rollout first: a reader of the raw line sees them before the payload.
    const { type, ...rest } = event;
    this.line({ version: REPORT_VERSION, type, time: this.now().toISOString(), rollout: this.rollout, ...rest });
  };

  /** Writes the final report; only the first one counts (one run, one last line). */
  report(report: FinalReport): void {
    if (this.reported) return;
    this.reported = true;
    this.line(report);
  }

  /** Whether the final report was written. */
  get done(): boolean {
    return this.reported;
  }

  private line(value: object): void {
    try {
      this.out.write(`${JSON.stringify(redactDeep(value, this.redact))}\n`);
    } catch {
      // A closed stdout drops events; the rollout goes on.
    }
  }
}

/**
 * Appends the summary to the file GitHub Actions names in GITHUB_STEP_SUMMARY (never truncates it).
 * Returns a warning sentence when it cannot be written: a summary is not worth failing a deployment for.
 */
export async function appendStepSummary(file: string, markdown: string): Promise<string | undefined> {
  try {
    // Non-blocking, and only a regular file: a FIFO with no reader would block the open, and the process with it.
    const handle = await fs.open(file, fsc.O_WRONLY | fsc.O_APPEND | fsc.O_CREAT | fsc.O_NONBLOCK, 0o644);
    try {
      if (!(await handle.stat()).isFile()) return `cannot append the summary to GITHUB_STEP_SUMMARY (${file}): it is not a regular file.`;
      await handle.appendFile(markdown, { encoding: 'utf8' });
    } finally {
      await handle.close();
    }
    return undefined;
  } catch (err) {
    return `cannot append the summary to GITHUB_STEP_SUMMARY (${file}): ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}.`;
  }
}

/** The exit code of an interrupted run: 128 + the number of the signal main() aborted with. */
export function interruptedCodeOf(signal: AbortSignal): number {
  return signal.reason === 'SIGTERM' ? ExitCode.terminated : signal.reason === 'SIGHUP' ? ExitCode.hangup : ExitCode.interrupted;
}

/** The end of a run with a report: its last NDJSON line, and the step summary appended when GITHUB_STEP_SUMMARY names a file. */
export async function deliverReport(report: FinalReport, o: { writer: NdjsonWriter | undefined; summaryFile: string | undefined; redact: (s: string) => string; warn: (line: string) => void }): Promise<void> {
  o.writer?.report(report);
  if (!o.summaryFile) return;
  const trouble = await appendStepSummary(o.summaryFile, o.redact(renderStepSummary(report)));
  if (trouble) o.warn(`warning: ${trouble}\n`);
}
