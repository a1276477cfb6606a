/**
 * Imported first by main.ts, for its side effect: colorette (listr2's colours) decides when it is loaded, from the
 * environment, so the decision must be in process.env before any module imports listr2.
 */
import { applyColorDecision } from './color.js';

applyColorDecision(process.env, Boolean(process.stderr.isTTY));
