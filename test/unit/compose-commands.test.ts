import { describe, expect, it } from 'vitest';
import { composeConfigQuiet, composeDown, composeRecreate, composeUpAll, composeUpDryRun, parseUpDryRun } from '../../src/engine/compose-commands.js';

const t = { project: 'arena', files: ['/srv/a.yml', '/srv/b.yml'] };

describe('compose argv builders', () => {
  it('validates with config --quiet', () => {
    expect(composeConfigQuiet(t)).toEqual(['compose', '--project-name', 'arena', '--file', '/srv/a.yml', '--file', '/srv/b.yml', 'config', '--quiet']);
  });
  it("asks compose's dry run what it would recreate", () => {
    expect(composeUpDryRun(t, ['web-1', 'nginx'])).toEqual(['compose', '--dry-run', '--project-name', 'arena', '--file', '/srv/a.yml', '--file', '/srv/b.yml', 'up', '--detach', '--no-deps', '--no-build', '--pull', 'never', 'web-1', 'nginx']);
  });
  it('recreates exactly the named service, without its dependencies, builds or pulls', () => {
    expect(composeRecreate(t, ['web-1'])).toEqual(['compose', '--project-name', 'arena', '--file', '/srv/a.yml', '--file', '/srv/b.yml', 'up', '--detach', '--no-deps', '--force-recreate', '--no-build', '--pull', 'never', 'web-1']);
  });
  it('restores from a backup with the original project directory', () => {
    expect(composeRecreate({ project: 'arena', files: ['/b/compose/x.yml'], projectDirectory: '/srv' }, ['web-2'])).toEqual([
      'compose', '--project-name', 'arena', '--project-directory', '/srv', '--file', '/b/compose/x.yml', 'up', '--detach', '--no-deps', '--force-recreate', '--no-build', '--pull', 'never', 'web-2',
    ]);
  });
  it('brings a whole plan up and a project down', () => {
    expect(composeUpAll({ project: 'p', files: ['/f.yml'] }, { wait: true, timeoutS: 60 })).toEqual(['compose', '--project-name', 'p', '--file', '/f.yml', 'up', '--detach', '--no-build', '--pull', 'never', '--remove-orphans', '--wait', '--wait-timeout', '60']);
    expect(composeDown('p', { timeoutS: 20 })).toEqual(['compose', '--project-name', 'p', 'down', '--volumes', '--remove-orphans', '--timeout', '20']);
  });
  it("parses the dry run's verdicts, first word per container", () => {
    const out = [
      'time="x" level=warning msg="Found orphan containers"',
      ' DRY-RUN MODE -  Container arena-web-1-1  Recreate',
      ' DRY-RUN MODE -  Container arena-redis-1  Running',
      ' DRY-RUN MODE -  Container arena-web-1-1  Recreated',
      ' DRY-RUN MODE -  Container arena-web-7-1  Create',
      ' DRY-RUN MODE -  Container 6385071cdbf2_arena-web-1-1  Started',
    ].join('\n');
    expect([...parseUpDryRun(out)]).toEqual([
      ['arena-web-1-1', 'recreate'],
      ['arena-redis-1', 'running'],
      ['arena-web-7-1', 'create'],
    ]);
  });
});
