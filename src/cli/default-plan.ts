/** The plan a rollout or validate uses when none is given: the guide's optimized plan, shipped in plans/. */
import path from 'node:path';

export const DEFAULT_PLAN = path.join('plans', 'docker-compose.loadbalanced.optimized.yml');
