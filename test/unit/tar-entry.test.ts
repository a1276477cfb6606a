import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { firstTarEntry } from '../../src/engine/docker-engine-client.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'arena-deploy-test-tar-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const tar = (args: string[]) => execFileSync('tar', ['-C', dir, '-c', ...args]);

describe('firstTarEntry: what the archive API returns for a bind-mounted path', () => {
  it('a file, byte-exact, also past a 512-byte block and behind a pax header', () => {
    const bytes = Buffer.concat([Buffer.from([0, 255, 13, 10]), Buffer.alloc(1500, 0x61)]);
    const long = `${'n'.repeat(120)}.conf`;
    writeFileSync(path.join(dir, long), bytes);
    expect(firstTarEntry(tar(['--format=pax', long]))).toEqual({ type: 'file', data: bytes });
    expect(firstTarEntry(tar(['--format=gnu', long]))).toEqual({ type: 'file', data: bytes });
  });

  it('an empty file, a folder, a symlink, and no entry at all', () => {
    writeFileSync(path.join(dir, 'empty'), '');
    mkdirSync(path.join(dir, 'sub'));
    execFileSync('ln', ['-s', 'empty', path.join(dir, 'link')]);
    expect(firstTarEntry(tar(['empty']))).toEqual({ type: 'file', data: Buffer.alloc(0) });
    expect(firstTarEntry(tar(['--no-recursion', 'sub']))?.type).toBe('folder');
    expect(firstTarEntry(tar(['link']))?.type).toBe('link');
    expect(firstTarEntry(Buffer.alloc(1024))).toBeUndefined();
  });
});
