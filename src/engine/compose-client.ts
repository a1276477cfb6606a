/** The compose CLI as the tool uses it: argv from compose-commands, run by the one process runner. */
import { CommandFailedError, PreflightError, ValidationError } from '../errors.js';
import { DOCKER, composeConfigQuiet, composeDown, composeRecreate, composeUpAll, composeUpDryRun, composeVersion, parseUpDryRun, type ComposeAction, type ComposeTarget } from './compose-commands.js';
import type { ProcessRunner } from './process-runner.js';

/** What the tool asks of docker compose. */
export interface ComposeClient {
  /** compose's version, or PreflightError when compose v2 is missing. */
  version(): Promise<string>;
  /** ValidationError with compose's own sentence when compose rejects the files. */
  validate(t: ComposeTarget): Promise<void>;
  /** Which of these services' containers compose would recreate (container name → action), without changing anything. */
  pendingChanges(t: ComposeTarget, services: readonly string[]): Promise<Map<string, ComposeAction>>;
  recreate(t: ComposeTarget, services: readonly string[], signal?: AbortSignal): Promise<void>;
  upAll(t: ComposeTarget, opts?: { wait?: boolean; timeoutS?: number }): Promise<void>;
  down(project: string): Promise<void>;
}

/** docker compose v2 through the docker CLI plugin. */
export class DockerComposeClient implements ComposeClient {
  constructor(private readonly runner: ProcessRunner) {}

  async version(): Promise<string> {
    try {
      const { stdout } = await this.runner.run(DOCKER, composeVersion(), { timeoutMs: 30_000 });
      return stdout.trim();
    } catch (err) {
      throw new PreflightError('docker compose v2 is not installed (`docker compose version` fails): install it, for example with scripts/install-prereqs.sh.', { cause: err });
    }
  }

  async validate(t: ComposeTarget): Promise<void> {
    try {
      await this.runner.run(DOCKER, composeConfigQuiet(t), { timeoutMs: 60_000 });
    } catch (err) {
      if (err instanceof CommandFailedError) {
        throw new ValidationError(`docker compose rejects ${t.files.join(', ')}: ${err.firstStderrLine || 'no reason given'}`, { cause: err });
      }
      throw err;
    }
  }

  async pendingChanges(t: ComposeTarget, services: readonly string[]): Promise<Map<string, ComposeAction>> {
    const { stdout, stderr } = await this.runner.run(DOCKER, composeUpDryRun(t, services), { timeoutMs: 60_000 });
    return parseUpDryRun(`${stdout}\n${stderr}`);
  }

  async recreate(t: ComposeTarget, services: readonly string[], signal?: AbortSignal): Promise<void> {
    await this.runner.run(DOCKER, composeRecreate(t, services), { timeoutMs: 10 * 60_000, ...(signal ? { signal } : {}) });
  }

  async upAll(t: ComposeTarget, opts: { wait?: boolean; timeoutS?: number } = {}): Promise<void> {
    await this.runner.run(DOCKER, composeUpAll(t, opts), { timeoutMs: 15 * 60_000 });
  }

  async down(project: string): Promise<void> {
    await this.runner.run(DOCKER, composeDown(project, { timeoutS: 20 }), { timeoutMs: 5 * 60_000 });
  }
}
