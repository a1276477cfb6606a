import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { restoreDirectory, sha256, type BackupManifest } from '../../src/backup/create-backup.js';
import { markDown } from '../../src/rollout/drain.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'arena-deploy-test-restore-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('restoreDirectory', () => {
  const conf = path.join(dir, 'project', 'nginx.conf');
  mkdirSync(path.dirname(conf));
  writeFileSync(conf, 'edited since the backup');
  const manifest = (remote: boolean): BackupManifest =>
    ({
      projectDirectory: path.join(dir, 'project'),
      referencedFiles: [{ original: conf, stored: 'files/project/nginx.conf', sha256: sha256('as backed up'), bytes: 12 }],
      skipped: [],
      ...(remote ? { remoteFiles: [] } : {}),
    }) as unknown as BackupManifest;

  it('a local engine: a file changed since the backup makes the restore use the backup copies', async () => {
    expect(await restoreDirectory(path.join(dir, 'backup'), manifest(false))).toEqual({ projectDirectory: path.join(dir, 'backup', 'files', 'project'), fromBackup: true });
  });

  it("the drain's own marks are not an edit: a rollout that fails while web-1 is marked down restores from the original folder", async () => {
    const original = 'upstream b {\n    server web-1:8000 max_fails=3;\n    server web-2:8000;\n}\n';
    const lb = path.join(dir, 'project', 'lb.conf');
    writeFileSync(lb, markDown(original, new Set(['web-1'])).text);
    const m = { projectDirectory: path.join(dir, 'project'), referencedFiles: [{ original: lb, stored: 'files/project/lb.conf', sha256: sha256(original), bytes: original.length }], skipped: [] } as unknown as BackupManifest;
    expect(await restoreDirectory(path.join(dir, 'backup'), m)).toEqual({ projectDirectory: path.join(dir, 'project'), fromBackup: false });
    // A real edit beside the marks still counts.
    writeFileSync(lb, markDown(original.replace('web-2:8000', 'web-2:8001'), new Set(['web-1'])).text);
    expect((await restoreDirectory(path.join(dir, 'backup'), m)).fromBackup).toBe(true);
  });

  it('a remote engine: always the original folder (the backup copies are not on the engine host)', async () => {
    expect(await restoreDirectory(path.join(dir, 'backup'), manifest(true))).toEqual({ projectDirectory: path.join(dir, 'project'), fromBackup: false });
  });
});
