/** The narrow view of the Docker engine the tool needs; DockerEngineClient is the real one. */

/** The engine's answer to a ping: who it is and how big the host is. */
export interface EngineInfo {
  /** What the tool talks to, for messages: `unix:///var/run/docker.sock`, `tcp://…`, `ssh://…`. */
  readonly endpoint: string;
  readonly serverVersion: string;
  readonly ncpu: number;
  readonly memTotalBytes: number;
  /** True when the engine may be on another host (not a unix socket): bind-mounted files are then checked there. */
  readonly remote?: boolean;
}

/** Docker health as the engine reports it. */
export type HealthState = 'healthy' | 'unhealthy' | 'starting' | 'none';

/** One container of a compose project, from its labels and state. */
export interface ContainerSummary {
  readonly id: string;
  readonly name: string;
  readonly project: string;
  readonly service: string;
  readonly number: number;
  readonly state: string;
  readonly health: HealthState;
  readonly image: string;
  readonly configHash: string | undefined;
  readonly configFiles: readonly string[];
  readonly workingDir: string | undefined;
}

/** One probe from the container's health log. */
export interface HealthProbe {
  readonly exitCode: number;
  readonly output: string;
  readonly start: string;
}

/** What `docker inspect` says about a container, mapped to what the tool uses. */
export interface ContainerDetails extends ContainerSummary {
  readonly running: boolean;
  readonly restarting: boolean;
  readonly restartCount: number;
  readonly exitCode: number;
  readonly oomKilled: boolean;
  readonly startedAt: string;
  readonly error: string;
  readonly healthLog: readonly HealthProbe[];
  readonly hasHealthcheck: boolean;
  readonly memoryLimitBytes: number;
  readonly nanoCpus: number;
  readonly cmd: readonly string[];
  /** Ports published on the engine's host (`docker port`), for probing the health URL from outside. */
  readonly publishedPorts?: readonly PublishedPort[];
  /** The health check's test and per-probe timeout as the container was created with them. */
  readonly healthTest?: readonly string[];
  readonly healthTimeoutMs?: number;
}

/** One published port: `127.0.0.1:8001->8000/tcp`. */
export interface PublishedPort {
  readonly containerPort: number;
  readonly protocol: string;
  readonly hostIp: string;
  readonly hostPort: number;
}

/** A container event of the project: `health_status: healthy`, `die`, `oom`, `start`, `restart`… */
export interface EngineEvent {
  readonly action: string;
  readonly containerId: string;
  readonly service: string | undefined;
  readonly exitCode: number | undefined;
  readonly timeMs: number;
}

/** What `docker stats --no-stream` shows of a container: memory without the inactive page cache, CPU in % of one CPU. */
export interface ResourceUsage {
  readonly memoryBytes: number | undefined;
  /** As docker stats computes it: 100 is one CPU busy, 200 two. */
  readonly cpuPercent: number | undefined;
}

/** The only door to Docker for observing and for direct container operations. */
export interface EngineClient {
  /** Answers or throws EngineUnreachableError. */
  ping(): Promise<EngineInfo>;
  /** All containers of a project, stopped ones included, one-off (`run`) containers excluded. */
  listProject(project: string): Promise<ContainerSummary[]>;
  inspect(id: string): Promise<ContainerDetails>;
  /** The raw `docker inspect` JSON of containers, for backups. */
  inspectRaw(ids: readonly string[]): Promise<unknown[]>;
  imageExists(ref: string): Promise<boolean>;
  /** The last lines of a container's output (stdout and stderr). */
  logsTail(id: string, lines: number): Promise<string>;
  /** Container events of one project until the signal aborts (or the engine goes away); from `sinceMs` on when given. */
  events(project: string, signal: AbortSignal, sinceMs?: number): AsyncIterable<EngineEvent>;
  /** Memory the container uses now (as `docker stats` counts it: without the inactive page cache), or undefined when not running. */
  memoryUsage(id: string): Promise<number | undefined>;
  /** Memory (as memoryUsage) and CPU use now, from one `docker stats --no-stream` sample; undefined when not running. */
  resourceUsage(id: string): Promise<ResourceUsage | undefined>;
  stop(id: string, timeoutS: number): Promise<void>;
  remove(id: string): Promise<void>;
  /** A file on the engine's host, read through a throwaway container of `image` (for remote engines' bind mounts). */
  readHostFile?(image: string, hostPath: string): Promise<{ readonly found: true; readonly data: Buffer } | { readonly found: false; readonly reason: string }>;
  /** Runs argv in a running container (`docker exec`, no shell, no TTY) and returns its exit code and output. */
  exec(id: string, argv: readonly string[]): Promise<ExecResult>;
}

/** What a command run in a container printed, and how it ended. */
export interface ExecResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}
