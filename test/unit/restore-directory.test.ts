import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { restoreDirectory, sha256, type BackupManifest } from '../../src/backup/create-backup.js';

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

  it('a remote engine: always the original folder (the backup copies are not on the engine host)', async () => {
    expect(await restoreDirectory(path.join(dir, 'backup'), manifest(true))).toEqual({ projectDirectory: path.join(dir, 'project'), fromBackup: false });
  });
});
