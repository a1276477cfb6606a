/** Finding the current deployment: its containers by compose labels, and the compose files they came from. */
import { existsSync } from 'node:fs';
import { PlanError, PreflightError } from '../errors.js';
import type { ContainerSummary, EngineClient } from '../engine/engine-client.js';
import { loadPlan } from '../plan/load-plan.js';
import type { Plan } from '../plan/types.js';

/** The live fleet and the plan it runs. */
export interface CurrentDeployment {
  readonly live: readonly ContainerSummary[];
  readonly plan: Plan;
  /** Where the files came from: the containers' labels or --current. */
  readonly source: 'labels' | 'flag';
}

/** Reads the live containers of a project and loads the plan they were created from. */
export async function discoverCurrent(engine: EngineClient, project: string, currentFiles: readonly string[] | undefined, endpoint: string): Promise<CurrentDeployment> {
  const live = await engine.listProject(project);
  if (live.length === 0) {
    throw new PreflightError(`No containers of compose project "${project}" exist on the engine at ${endpoint}: deploy it first (docker compose up -d), or name the project with --project.`);
  }
  if (currentFiles && currentFiles.length > 0) {
    return { live, plan: loadPlan({ files: currentFiles, projectName: project }), source: 'flag' };
  }
  const withFiles = live.filter((c) => c.configFiles.length > 0);
  const first = withFiles[0];
  if (!first) throw new PreflightError(`The containers of "${project}" carry no compose config-files label (not created by docker compose v2?): pass the current files with --current FILE.`);
  const files = first.configFiles;
  const missing = files.filter((f) => !existsSync(f));
  if (missing.length) {
    throw new PlanError(`the current deployment was created from ${missing.join(', ')}, which no longer ${missing.length === 1 ? 'exists' : 'exist'} here: pass the current compose files with --current FILE`);
  }
  return { live, plan: loadPlan({ files, projectName: project, projectDirectory: first.workingDir }), source: 'labels' };
}
