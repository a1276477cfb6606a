/** The fleet `--offline` assumes: every service of the current plan running and healthy, as its files say. Pure. */
import type { ContainerSummary } from '../engine/engine-client.js';
import type { Plan } from '../plan/types.js';

/** One running, healthy container per replica of every service of the current plan; no engine is asked. */
export function assumedFleet(current: Plan): ContainerSummary[] {
  const out: ContainerSummary[] = [];
  for (const s of Object.values(current.services)) {
    for (let n = 1; n <= Math.max(1, s.replicas); n += 1) {
      const name = `${current.project}-${s.name}-${n}`;
      out.push({
        // Not a container id: there is no engine to give one. The step list only counts them.
        id: `offline:${name}`,
        name,
        project: current.project,
        service: s.name,
        number: n,
        state: 'running',
        health: s.healthcheck ? 'healthy' : 'none',
        image: s.image ?? `${current.project}-${s.name}`,
        configHash: undefined,
        configFiles: current.files,
        workingDir: current.projectDirectory,
      });
    }
  }
  return out;
}
