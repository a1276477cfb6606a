/** Parsers for flag values: each throws UsageError with one sentence. */
import { UsageError } from '../errors.js';
import { parseDuration, parseSize } from '../plan/units.js';

/** `--monitor 5s` → 5000. */
export function durationOption(flag: string, minMs = 0) {
  return (value: string): number => {
    const ms = parseDuration(value);
    if (ms === undefined) throw new UsageError(`${flag} "${value}" is not a duration (for example 30s, 1m30s, 500ms).`);
    if (ms < minMs) throw new UsageError(`${flag} "${value}" is too short: it must be at least ${minMs / 1000}s.`);
    if (ms > 24 * 3_600_000) throw new UsageError(`${flag} "${value}" is longer than a day.`);
    return ms;
  };
}

/** `--parallelism 2` → 2, with bounds. */
export function intOption(flag: string, min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isInteger(n) || n < min || n > max) throw new UsageError(`${flag} "${value}" must be a whole number from ${min} to ${max}.`);
    return n;
  };
}

/** Repeatable string flags. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** `--host-cpus 16` → 16, with bounds. */
export function numberOption(flag: string, min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n < min || n > max) throw new UsageError(`${flag} "${value}" must be a number from ${min} to ${max}.`);
    return n;
  };
}

/** `--host-memory 64g` → bytes. */
export function sizeOption(flag: string, min = 1) {
  return (value: string): number => {
    const n = parseSize(value);
    if (n === undefined || n === 0) throw new UsageError(`${flag} "${value}" is not a size (for example 64g, 24576m).`);
    if (n < min) throw new UsageError(`${flag} "${value}" is ${n} bytes, too small for a host: give a unit (for example 64g).`);
    return n;
  };
}
