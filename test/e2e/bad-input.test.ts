/**
 * End to end on the real engine: `rollout` with bad input refuses in one sentence, with the documented exit code, and
 * touches nothing. Each case runs the built CLI against one live fleet with a fresh state folder and checks what an
 * operator would: the exit code (README: 2 bad usage or an unreadable plan, 3 validation, 4 preflight), exactly one
 * `error: ` line saying what is wrong (file:line:col for a plan's syntax), no stack trace (except with --debug),
 * nothing on stdout, the same containers as before, and an empty state folder.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, inspectProject, OPTIMIZED, tempStateDir, useFleet } from './helpers.js';

/** The plan files the cases use, written to a temp folder. */
interface Files {
  /** The optimized twin with a tab indenting web-1's image: what a hand edit in the wrong editor gives. */
  readonly tabbed: string;
  /** The line of that tab, 1-based. */
  readonly tabbedLine: number;
  /** Valid YAML, not a compose file: a list. */
  readonly list: string;
  /** An override file pointing web-2 at an image the engine does not have. */
  readonly missingImage: string;
  /** The optimized twin with another project's name. */
  readonly otherProject: string;
  /** A path that does not exist. */
  readonly absent: string;
}

interface Case {
  readonly name: string;
  readonly args: (f: Files, project: string) => string[];
  readonly exitCode: number;
  /** The whole `error: ` line, without its prefix. */
  readonly error: (f: Files, project: string) => string | RegExp;
  /** More stderr lines after the error line, as they are (a commander suggestion; see the TODO). */
  readonly moreStderr?: readonly RegExp[];
  /** --debug: a stack trace is expected. */
  readonly trace?: boolean;
}

const WEB_SERVICES = 'nginx, redis, web-1, web-2, web-3, web-4, web-5, web-6';

const cases: Case[] = [
  {
    name: 'malformed YAML in the plan file: exit 2, file:line:col',
    args: (f, p) => ['rollout', f.tabbed, '--project', p],
    exitCode: 2,
    error: (f) => `${f.tabbed}:${f.tabbedLine}:1: invalid YAML: Tabs are not allowed as indentation`,
  },
  {
    name: 'valid YAML that is not a compose file (a list): exit 2, file:line:col',
    args: (f, p) => ['rollout', f.list, '--project', p],
    exitCode: 2,
    error: (f) => `${f.list}:1:1: a compose file must be a mapping at the top level`,
  },
  {
    name: 'a plan file that does not exist: exit 2',
    args: (f, p) => ['rollout', f.absent, '--project', p],
    exitCode: 2,
    error: (f) => `${f.absent}: cannot read compose file: no such file`,
  },
  {
    name: 'an unknown service in --services: exit 3',
    args: (_f, p) => ['rollout', OPTIMIZED, '--project', p, '--services', 'web-9'],
    exitCode: 3,
    error: () => `--services names "web-9", which the target plan ${OPTIMIZED} does not define (it has ${WEB_SERVICES}).`,
  },
  {
    name: 'a missing image (an override file points web-2 at arena-deploy/backend:does-not-exist): exit 3',
    args: (f, p) => ['rollout', OPTIMIZED, f.missingImage, '--project', p],
    exitCode: 3,
    error: () => 'The engine does not have the image arena-deploy/backend:does-not-exist (web-2): build or load it first (no image is pulled during a rollout).',
  },
  {
    name: 'a plan of another compose project (its name:, no --project, --current the fleet\'s file): exit 3',
    args: (f) => ['rollout', f.otherProject, '--current', OPTIMIZED],
    exitCode: 3,
    error: (f) => `--current ${OPTIMIZED} belongs to compose project "arena" but the target plan to "other-project": a rollout stays within one project (pass --project to name it).`,
  },
  {
    name: 'a plan of a project that has no containers (its name:, no --project, no --current): exit 4',
    args: (f) => ['rollout', f.otherProject],
    exitCode: 4,
    error: () => /^No containers of compose project "other-project" exist on the engine at \S+: deploy it first \(docker compose up -d\), or name the project with --project\.$/,
  },
  {
    name: '--parallelism 0: exit 2',
    args: (_f, p) => ['rollout', OPTIMIZED, '--project', p, '--parallelism', '0'],
    exitCode: 2,
    error: () => '--parallelism "0" must be a whole number from 1 to 100.',
  },
  {
    name: '--parallelism abc: exit 2',
    args: (_f, p) => ['rollout', OPTIMIZED, '--project', p, '--parallelism', 'abc'],
    exitCode: 2,
    error: () => '--parallelism "abc" must be a whole number from 1 to 100.',
  },
  {
    name: '--delay 5x: exit 2',
    args: (_f, p) => ['rollout', OPTIMIZED, '--project', p, '--delay', '5x'],
    exitCode: 2,
    error: () => '--delay "5x" is not a duration (for example 30s, 1m30s, 500ms).',
  },
  {
    name: '--monitor -1s: exit 2',
    args: (_f, p) => ['rollout', OPTIMIZED, '--project', p, '--monitor', '-1s'],
    exitCode: 2,
    error: () => '--monitor "-1s" is not a duration (for example 30s, 1m30s, 500ms).',
  },
  {
    name: 'an unknown flag: exit 2',
    args: (_f, p) => ['rollout', OPTIMIZED, '--project', p, '--bogus'],
    exitCode: 2,
    error: () => "unknown option '--bogus'. See `arena-deploy --help`.",
  },
  {
    name: 'a misspelt flag: exit 2, with a suggestion',
    args: (_f, p) => ['rollout', OPTIMIZED, '--project', p, '--paralelism', '2'],
    exitCode: 2,
    error: () => "unknown option '--paralelism': did you mean --parallelism? See `arena-deploy --help`.",
  },
  {
    name: 'rollback --to a folder that does not exist: exit 2',
    args: (f) => ['rollback', '--to', f.absent],
    exitCode: 2,
    error: (f) => `--to ${f.absent}: there is no such backup folder; \`arena-deploy history --output json\` shows each rollout's backup.`,
  },
  {
    name: '--debug on malformed YAML: exit 2, the same sentence, and the stack trace',
    args: (f, p) => ['rollout', f.tabbed, '--project', p, '--debug'],
    exitCode: 2,
    error: (f) => `${f.tabbed}:${f.tabbedLine}:1: invalid YAML: Tabs are not allowed as indentation`,
    trace: true,
  },
];

function ids(fleet: Map<string, { Id: string }>): Record<string, string> {
  return Object.fromEntries([...fleet].map(([s, c]) => [s, c.Id]));
}

describe('rollout refuses bad input in one sentence and touches nothing', () => {
  const { project, env } = useFleet(OPTIMIZED, 56);
  let dir: string;
  let files: Files;

  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'arena-deploy-bad-input-'));
    const twin = readFileSync(OPTIMIZED, 'utf8');
    const tabbedText = twin.replace('\n    image: arena-deploy/backend:fixture\n', '\n\timage: arena-deploy/backend:fixture\n');
    expect(tabbedText).not.toBe(twin);
    const write = (name: string, text: string) => {
      const file = path.join(dir, name);
      writeFileSync(file, text);
      return file;
    };
    files = {
      tabbed: write('tabbed.yml', tabbedText),
      tabbedLine: tabbedText.split('\n').findIndex((l) => l.startsWith('\timage:')) + 1,
      list: write('list.yml', '- web-1\n- web-2\n'),
      missingImage: write('missing-image.yml', 'services:\n  web-2:\n    image: arena-deploy/backend:does-not-exist\n'),
      otherProject: write('other-project.yml', twin.replace(/^name: arena$/m, 'name: other-project')),
      absent: path.join(dir, 'no-such-plan.yml'),
    };
    expect(readFileSync(files.otherProject, 'utf8')).toContain('\nname: other-project\n');
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const c of cases) {
    it(c.name, async () => {
      const before = ids(await inspectProject(project));
      expect(Object.keys(before).sort()).toEqual(WEB_SERVICES.split(', '));
      const state = tempStateDir();
      const r = await cli([...c.args(files, project), '--state-dir', state], env, 120_000);

      const lines = r.stderr.split('\n').filter((l) => l !== '');
      const errorLines = lines.filter((l) => l.startsWith('error: '));
      expect(errorLines, r.stderr).toHaveLength(1);
      // The error comes first: nothing was printed before the refusal.
      expect(lines[0], r.stderr).toBe(errorLines[0]);
      const expected = c.error(files, project);
      const sentence = (errorLines[0] as string).slice('error: '.length);
      if (typeof expected === 'string') expect(sentence).toBe(expected);
      else expect(sentence).toMatch(expected);
      const trace = lines.filter((l) => /^\s+at /.test(l));
      if (c.trace) {
        expect(trace.length, r.stderr).toBeGreaterThan(0);
        expect(r.stderr).toContain('PlanError: ');
      } else {
        expect(trace, r.stderr).toEqual([]);
        expect(lines.slice(1).map((l, i) => (c.moreStderr?.[i] ?? /^$/).test(l)), r.stderr).toEqual(lines.slice(1).map(() => true));
      }
      expect(r.stdout).toBe('');
      expect(r.exitCode, r.stderr).toBe(c.exitCode);

      // Nothing touched: the same containers, no backup, lock or journal.
      expect(ids(await inspectProject(project))).toEqual(before);
      expect(readdirSync(state)).toEqual([]);
    }, 180_000);
  }
});
