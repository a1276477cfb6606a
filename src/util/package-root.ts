/** The installed package's own folder, for its bundled plans and fixtures. */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** dist/util/package-root.js → the package root. */
export const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
