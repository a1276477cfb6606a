/**
 * A docker compose left running by a tool that was killed: its output goes to files it holds itself, so it finishes
 * its recreate after the tool is gone. Whoever continues or undoes that rollout waits for it first, else two composes
 * race for the same container names.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { PreflightError } from '../errors.js';

/** Pids of the docker compose processes of this host changing `project` (dry runs aside). Linux /proc; none elsewhere. */
export function composeProcesses(project: string): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const name of entries) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    const at = argv.indexOf('--project-name');
    if (argv.includes('compose') && at >= 0 && argv[at + 1] === project && !argv.includes('--dry-run')) pids.push(Number(name));
  }
  return pids;
}

/** Waits until no docker compose of this host works on `project` (at most `timeoutMs`), saying once what it waits for. */
export async function waitForComposeOf(project: string, say: (line: string) => void, timeoutMs = 10 * 60_000): Promise<void> {
  let pids = composeProcesses(project);
  if (pids.length === 0) return;
  say(`Waiting for the docker compose still working on ${project} (pid ${pids.join(', ')}, started by the interrupted run) to finish...\n`);
  const until = Date.now() + timeoutMs;
  while (pids.length > 0) {
    if (Date.now() > until) throw new PreflightError(`A docker compose (pid ${pids.join(', ')}) is still working on ${project} after ${Math.round(timeoutMs / 60_000)} min: stop it, then run this again.`);
    await new Promise((r) => setTimeout(r, 500));
    pids = composeProcesses(project);
  }
}
