/** Typed progress events of a rollout (and a rollback): what `--output json` writes as NDJSON, one object per line. */

/** Version of the event and report format; bumped when a field changes meaning or goes away. */
export const REPORT_VERSION = 1 as const;

/** The steps an event can name; per-service steps carry `service` (and `container` once there is one). */
export type EventStep = 'validate' | 'preflight' | 'backup' | 'pause' | 'drain' | 'recreate' | 'wait-healthy' | 'undrain' | 'monitor' | 'retire' | 'verify' | 'rollback' | 'restore';

/** An event as the executor emits it; the CLI adds version, time and the rollout id. */
export type RolloutEventBody =
  | { readonly type: 'rollout-started'; readonly project: string; readonly engine: string; readonly plan: readonly string[]; readonly current: readonly string[]; readonly resumes?: string | undefined }
  | { readonly type: 'step-started'; readonly step: EventStep; readonly service?: string | undefined; readonly container?: string | undefined }
  | {
      readonly type: 'step-finished';
      readonly step: EventStep;
      readonly service?: string | undefined;
      readonly container?: string | undefined;
      readonly status: 'ok' | 'failed';
      readonly durationMs: number;
      /** What the step found (the backup folder, the verification) or why it failed. */
      readonly message?: string | undefined;
    }
  | { readonly type: 'health'; readonly service: string; readonly container: string; readonly from: string | null; readonly to: string; readonly via?: 'probe' | 'docker' | undefined }
  | { readonly type: 'warning'; readonly message: string };

/** Receives every event as it happens; must not throw (a broken pipe must not stop a rollout). */
export type EventSink = (event: RolloutEventBody) => void;

/** One NDJSON line as written: the body plus the envelope every event has. */
export type RolloutEvent = RolloutEventBody & { readonly version: typeof REPORT_VERSION; readonly time: string; readonly rollout: string };

/**
 * Times one step: `step-started` now, `step-finished` (ok or failed, with its duration) when `run` settles.
 * Without a sink it only runs the step.
 */
export async function timedStep<T>(
  sink: EventSink | undefined,
  now: () => number,
  what: { step: EventStep; service?: string | undefined; container?: string | undefined },
  run: () => Promise<T>,
  describe?: (value: T) => string | undefined,
): Promise<T> {
  if (!sink) return run();
  const t0 = now();
  sink({ type: 'step-started', ...what });
  try {
    const value = await run();
    sink({ type: 'step-finished', ...what, status: 'ok', durationMs: now() - t0, message: describe?.(value) });
    return value;
  } catch (err) {
    sink({ type: 'step-finished', ...what, status: 'failed', durationMs: now() - t0, message: err instanceof Error ? err.message : String(err) });
    throw err;
  }
}
