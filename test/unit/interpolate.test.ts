import { describe, expect, it } from 'vitest';
import { interpolate, InterpolationError, parseDotEnv } from '../../src/plan/interpolate.js';

const env = { SET: 'value', EMPTY: '' };

describe('interpolate', () => {
  it.each([
    ['${SET}', 'value'],
    ['$SET/x', 'value/x'],
    ['${UNSET:-d}', 'd'],
    ['${EMPTY:-d}', 'd'],
    ['${EMPTY-d}', ''],
    ['${UNSET-d}', 'd'],
    ['${SET:+alt}', 'alt'],
    ['${EMPTY:+alt}', ''],
    ['${EMPTY+alt}', 'alt'],
    ['$$SET', '$SET'],
    ['127.0.0.1:${PREFIX:-80}01:8000', '127.0.0.1:8001:8000'],
    ['${UNSET:-${SET}}', 'value'],
  ])('%s → %s', (input, out) => expect(interpolate(input, env)).toBe(out));

  it('fails for a required variable with its message', () => {
    expect(() => interpolate('${UNSET:?set UNSET first}', env)).toThrow(new InterpolationError('required variable UNSET is missing a value: set UNSET first'));
    expect(() => interpolate('${EMPTY?x}', env)).not.toThrow();
    expect(() => interpolate('${EMPTY:?x}', env)).toThrow(InterpolationError);
  });

  it('rejects malformed expressions', () => {
    expect(() => interpolate('${', env)).toThrow(/missing "}"/);
    expect(() => interpolate('${1BAD}', env)).toThrow(/invalid interpolation/);
  });
});

describe('parseDotEnv', () => {
  it('reads comments, export, quotes', () => {
    expect(parseDotEnv('# c\nA=1\nexport B="two words"\nC=\'x y\'\nD=plain # note\n\nbad line\n')).toEqual({ A: '1', B: 'two words', C: 'x y', D: 'plain' });
  });
});

describe("env files in compose's YAML-like form", () => {
  it('reads KEY: value lines too, so their values are known (and masked)', () => {
    expect(parseDotEnv('DJANGO_SECRET_KEY: colon-value\nPLAIN=1\n# c: d\n')).toEqual({ DJANGO_SECRET_KEY: 'colon-value', PLAIN: '1' });
  });
});
