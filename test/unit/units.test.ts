import { describe, expect, it } from 'vitest';
import { formatDuration, formatSize, parseCpus, parseDuration, parseSize } from '../../src/plan/units.js';

describe('parseDuration', () => {
  it.each([
    ['30s', 30_000],
    ['1m30s', 90_000],
    ['1.5s', 1500],
    ['100ms', 100],
    ['2h', 7_200_000],
    ['10', 10_000],
    [45, 45_000],
  ])('%s → %d ms', (input, ms) => expect(parseDuration(input)).toBe(ms));
  it.each(['', 'abc', '5 s', '1x', '-1s'])('rejects %j', (input) => expect(parseDuration(input)).toBeUndefined());
});

describe('parseSize', () => {
  it.each([
    ['5120M', 5120 * 1024 ** 2],
    ['5g', 5 * 1024 ** 3],
    ['512m', 512 * 1024 ** 2],
    ['1gb', 1024 ** 3],
    ['10G', 10 * 1024 ** 3],
    ['1073741824', 1073741824],
    [3072, 3072],
    ['2GiB', 2 * 1024 ** 3],
    ['5 GB', 5 * 1024 ** 3],
  ])('%s → %d bytes', (input, bytes) => expect(parseSize(input)).toBe(bytes));
  it.each(['5 GB x', '', 'lots', '-5m', '5  g'])('rejects %j', (input) => expect(parseSize(input)).toBeUndefined());
});

describe('parseCpus', () => {
  it('reads strings and numbers', () => {
    expect(parseCpus('2.5')).toBe(2.5);
    expect(parseCpus(2)).toBe(2);
    expect(parseCpus('two')).toBeUndefined();
  });
});

describe('formatting', () => {
  it('writes durations and sizes the way plans do', () => {
    expect(formatDuration(90_000)).toBe('1m30s');
    expect(formatDuration(30_000)).toBe('30s');
    expect(formatDuration(250)).toBe('250ms');
    expect(formatSize(5120 * 1024 ** 2)).toBe('5120M');
    expect(formatSize(10 * 1024 ** 3)).toBe('10G');
  });
});
