/** The typed, normalized view of a compose plan that the rest of the tool works on. */

/** Where a value came from, for error messages (`file:line:col`). */
export interface SourcePos {
  readonly file: string;
  readonly line: number;
  readonly col: number;
}

/** A service's health check, durations in milliseconds (Docker's defaults filled in). */
export interface Healthcheck {
  /** The test as compose gives it (`["CMD", …]`, `["CMD-SHELL", "…"]`). */
  readonly test: readonly string[];
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly startPeriodMs: number;
}

/** `deploy.update_config` with Swarm's meanings; defaults as documented in the README. */
export interface UpdateConfig {
  readonly parallelism: number;
  readonly delayMs: number;
  readonly failureAction: 'rollback' | 'pause' | 'continue';
  readonly monitorMs: number;
  readonly order: 'stop-first' | 'start-first';
  readonly maxFailureRatio: number;
  /** Which fields the plan set explicitly (the rest are defaults). */
  readonly explicit: readonly string[];
}

/** A published port. */
export interface PortMapping {
  readonly hostIp: string | undefined;
  readonly published: string | undefined;
  readonly target: number;
  readonly protocol: string;
}

/** A host path mounted into the container: these files are backed up. */
export interface BindMount {
  readonly source: string;
  readonly target: string;
  readonly readOnly: boolean;
}

/** One environment variable; `sensitive` ones are never printed. */
export interface EnvVar {
  readonly value: string | null;
  readonly sensitive: boolean;
}

/** What the plan says about one service. */
export interface ServicePlan {
  readonly name: string;
  readonly image: string | undefined;
  readonly hasBuild: boolean;
  readonly command: readonly string[] | undefined;
  readonly entrypoint: readonly string[] | undefined;
  readonly environment: Readonly<Record<string, EnvVar>>;
  /** Absolute paths of env files (missing optional ones are left out). */
  readonly envFiles: readonly string[];
  readonly ports: readonly PortMapping[];
  /** undefined: none in the plan (the image may still have one); null: disabled. */
  readonly healthcheck: Healthcheck | null | undefined;
  readonly limits: { readonly cpus: number | undefined; readonly memoryBytes: number | undefined };
  readonly reservations: { readonly cpus: number | undefined; readonly memoryBytes: number | undefined };
  /** compose's default is 10 s. */
  readonly stopGracePeriodMs: number | undefined;
  readonly restart: string | undefined;
  readonly updateConfig: UpdateConfig;
  readonly bindMounts: readonly BindMount[];
  readonly dependsOn: readonly string[];
  readonly replicas: number;
  /** The service's mapping as merged and interpolated, top-level key → canonical JSON, for fields the typed view does not cover. */
  readonly raw: Readonly<Record<string, string>>;
  readonly pos: SourcePos;
}

/** Our own top-level `x-arena-deploy` block. */
export interface ArenaExtension {
  /** Glob of the services rolled one at a time (default `web-*`). */
  readonly services: string | undefined;
  /** Services that are not recreated unless `--include` names them (default: redis/postgres/mysql/mongo… images). */
  readonly stateful: readonly string[] | undefined;
  /** The host the plan is meant for, when the engine cannot be asked. */
  readonly host: { readonly cpus: number | undefined; readonly memoryBytes: number | undefined; readonly reserveMemoryBytes: number | undefined } | undefined;
  /** The memory model of a gunicorn container, in bytes (defaults from the guide: 200 MB + workers × 300 MB + 200 MB). */
  readonly memoryModel: { readonly baseBytes: number | undefined; readonly perWorkerBytes: number | undefined; readonly overheadBytes: number | undefined } | undefined;
}

/** A whole compose plan: one or more files, merged and interpolated. */
export interface Plan {
  readonly project: string;
  /** Whether the project name came from the plan itself (top-level `name`) rather than a default. */
  readonly projectFromFile: boolean;
  readonly projectDirectory: string;
  /** Absolute paths of the compose files, in `-f` order. */
  readonly files: readonly string[];
  readonly services: Readonly<Record<string, ServicePlan>>;
  /** Named volumes declared at top level. */
  readonly volumes: readonly string[];
  readonly extension: ArenaExtension;
}
