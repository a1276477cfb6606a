import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadPlan } from '../../src/plan/load-plan.js';
import { gunicornOf } from '../../src/plan/gunicorn.js';
import { PlanError } from '../../src/errors.js';
import { planRollout } from '../../src/rollout/plan-rollout.js';

const root = path.resolve(import.meta.dirname, '..', '..');
const MB = 1024 ** 2;

/** A readFile over an in-memory tree, for loader cases. */
function memory(files: Record<string, string>) {
  return (f: string) => {
    const text = files[f];
    if (text === undefined) throw Object.assign(new Error(`ENOENT: ${f}`), { code: 'ENOENT' });
    return text;
  };
}

describe('the real plans', () => {
  it('reads the plan that got SIGKILLed: 10 web services × 12 workers × 6 threads in 3072M', () => {
    const plan = loadPlan({ files: [path.join(root, 'plans/docker-compose.loadbalanced.yml')], env: {} });
    expect(plan.project).toBe('arena');
    const web = Object.keys(plan.services).filter((s) => s.startsWith('web-'));
    expect(web).toEqual(['web-1', 'web-2', 'web-3', 'web-4', 'web-5', 'web-6', 'web-7', 'web-8', 'web-9', 'web-10']);
    for (const name of web) {
      const s = plan.services[name]!;
      expect(gunicornOf(s)).toMatchObject({ workers: 12, threads: 6, workerClass: 'gthread', timeoutS: 900, gracefulTimeoutS: 120 });
      expect(s.limits).toEqual({ cpus: 2, memoryBytes: 3072 * MB });
      expect(s.healthcheck).toMatchObject({ timeoutMs: 10_000, retries: 3 });
    }
    expect(plan.services['web-10']!.ports[0]).toEqual({ hostIp: '127.0.0.1', published: '8010', target: 8000, protocol: 'tcp' });
    expect(plan.services['redis']!.limits.cpus).toBe(2);
  });

  it("reads the optimized plan: the guide's key gunicorn command, 2.5 CPUs, 5120M, 30 s health checks", () => {
    const plan = loadPlan({ files: [path.join(root, 'plans/docker-compose.loadbalanced.optimized.yml')], env: {} });
    expect(plan.project).toBe('arena');
    const web = Object.keys(plan.services).filter((s) => s.startsWith('web-'));
    expect(web).toHaveLength(6);
    const s = plan.services['web-1']!;
    expect(gunicornOf(s)).toEqual({
      app: 'arena_backend.wsgi', workers: 4, threads: 4, workerClass: 'gthread', timeoutS: 300, gracefulTimeoutS: 60,
      keepAliveS: 75, maxRequests: 1000, maxRequestsJitter: 100, workerTmpDir: '/dev/shm', bind: ['0.0.0.0:8000'], configFile: undefined, unknown: [],
    });
    expect(s.limits).toEqual({ cpus: 2.5, memoryBytes: 5120 * MB });
    expect(s.healthcheck).toEqual({ test: ['CMD', 'curl', '-f', '--max-time', '25', 'http://localhost:8000/health/'], intervalMs: 30_000, timeoutMs: 30_000, retries: 3, startPeriodMs: 60_000 });
    expect(s.environment['PYTHONMALLOC']?.value).toBe('malloc');
    expect(s.environment['MALLOC_TRIM_THRESHOLD_']?.value).toBe('65536');
    expect(plan.services['nginx']!.limits).toEqual({ cpus: 1, memoryBytes: 1024 * MB });
    expect(plan.services['nginx']!.bindMounts[0]?.source).toBe(path.join(root, 'plans/nginx/load-balancer-optimized.conf'));
  });

  it('reads the twins with the same gunicorn flags and health checks, scaled resources and 127.0.0.1 ports', () => {
    const twin = loadPlan({ files: [path.join(root, 'fixtures/compose/arena/docker-compose.loadbalanced.optimized.yml')], env: { ARENA_PORT_PREFIX: '37' } });
    const real = loadPlan({ files: [path.join(root, 'plans/docker-compose.loadbalanced.optimized.yml')], env: {} });
    const t = twin.services['web-2']!;
    const r = real.services['web-2']!;
    expect(gunicornOf(t)).toEqual(gunicornOf(r));
    expect(t.healthcheck?.test).toEqual(r.healthcheck?.test);
    expect(t.healthcheck?.timeoutMs).toBe(30_000);
    expect(t.limits).toEqual({ cpus: 0.3125, memoryBytes: 1920 * MB });
    expect(t.ports[0]).toEqual({ hostIp: '127.0.0.1', published: '3702', target: 8000, protocol: 'tcp' });
    // The env file's values are secret-marked.
    expect(t.environment['DJANGO_SECRET_KEY']).toEqual({ value: 'fixture-secret-not-for-production', sensitive: true });
  });
});

describe('loader forms', () => {
  it('merges several -f files with compose rules and interpolates from .env', () => {
    const plan = loadPlan({
      files: ['/p/a.yml', '/p/b.yml'],
      env: { TAG: '2' },
      readFile: memory({
        '/p/.env': 'MEM=512m\n',
        '/p/a.yml': 'x-common: &c\n  restart: always\nservices:\n  web-1:\n    <<: *c\n    image: app:${TAG}\n    command: gunicorn app --workers 2\n    environment: [A=1, B=2]\n    ports: ["8001:8000"]\n',
        '/p/b.yml': 'services:\n  web-1:\n    command: ["gunicorn", "app", "--workers", "4"]\n    environment: {B: "3"}\n    ports: ["127.0.0.1:9001:9000"]\n    mem_limit: ${MEM}\n',
      }),
    });
    const s = plan.services['web-1']!;
    expect(plan.project).toBe('p');
    expect(s.image).toBe('app:2');
    expect(s.restart).toBe('always');
    expect(s.command).toEqual(['gunicorn', 'app', '--workers', '4']);
    expect(s.environment).toEqual({ A: { value: '1', sensitive: false }, B: { value: '3', sensitive: false } });
    expect(s.ports.map((p) => p.published)).toEqual(['8001', '9001']);
    expect(s.limits.memoryBytes).toBe(512 * MB);
  });

  it('names file, line and column and the path for a bad size', () => {
    const read = memory({ '/p/c.yml': 'services:\n  web-1:\n    image: x\n    deploy:\n      resources:\n        limits:\n          memory: five gigs\n' });
    expect(() => loadPlan({ files: ['/p/c.yml'], env: {}, readFile: read })).toThrow(new PlanError('services.web-1.deploy.resources.limits.memory: "five gigs" is not a size', { file: '/p/c.yml', line: 7, col: 19 }));
  });

  it('names the position of malformed YAML', () => {
    const read = memory({ '/p/c.yml': 'services:\n  web-1:\n    image: x\n   bad: [\n' });
    try {
      loadPlan({ files: ['/p/c.yml'], env: {}, readFile: read });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(PlanError);
      expect((err as PlanError).message).toMatch(/^\/p\/c\.yml:\d+:\d+: invalid YAML: /);
      expect((err as PlanError).line).toBeGreaterThanOrEqual(3);
    }
  });

  it('rejects unknown keys in x-arena-deploy', () => {
    const read = memory({ '/p/c.yml': 'x-arena-deploy:\n  services: "web-*"\n  colour: blue\nservices:\n  web-1:\n    image: x\n' });
    expect(() => loadPlan({ files: ['/p/c.yml'], env: {}, readFile: read })).toThrow('/p/c.yml:3:3: x-arena-deploy: unknown keys: colour');
  });

  it('says which required variable is missing', () => {
    const read = memory({ '/p/c.yml': 'services:\n  web-1:\n    image: app:${TAG:?set TAG}\n' });
    expect(() => loadPlan({ files: ['/p/c.yml'], env: {}, readFile: read })).toThrow('/p/c.yml:3:12: services.web-1.image: required variable TAG is missing a value: set TAG');
  });

  it('reads healthcheck forms and update_config defaults', () => {
    const read = memory({
      '/p/c.yml': 'services:\n  a:\n    image: x\n    healthcheck:\n      test: curl -f http://localhost/\n      interval: 1m30s\n  b:\n    image: x\n    healthcheck:\n      disable: true\n  c:\n    image: x\n    healthcheck:\n      test: ["NONE"]\n    deploy:\n      update_config:\n        parallelism: 2\n        delay: 10s\n',
    });
    const plan = loadPlan({ files: ['/p/c.yml'], env: {}, readFile: read });
    expect(plan.services['a']!.healthcheck).toEqual({ test: ['CMD-SHELL', 'curl -f http://localhost/'], intervalMs: 90_000, timeoutMs: 30_000, retries: 3, startPeriodMs: 0 });
    expect(plan.services['b']!.healthcheck).toBeNull();
    expect(plan.services['c']!.healthcheck).toBeNull();
    expect(plan.services['c']!.updateConfig).toMatchObject({ parallelism: 2, delayMs: 10_000, monitorMs: 5000, failureAction: 'rollback' });
    expect(plan.services['a']!.updateConfig.parallelism).toBe(1);
  });

  it('fails with one sentence for a missing file', () => {
    expect(() => loadPlan({ files: ['/nowhere/x.yml'], env: {}, readFile: memory({}) })).toThrow('/nowhere/x.yml: cannot read compose file: no such file');
  });
});

describe('a compose file written by other people', () => {
  const plan = loadPlan({ files: [path.join(root, 'fixtures/compose/real-world/docker-compose.yml')], env: {} });
  it('reads merge keys, string commands, legacy limits, long ports and GUNICORN_CMD_ARGS', () => {
    const web = plan.services['web']!;
    expect(web.image).toBe('registry.example.com/shop/web:1.4.2');
    expect(web.limits).toEqual({ cpus: 1.5, memoryBytes: 1024 ** 3 });
    expect(web.reservations.memoryBytes).toBe(512 * MB);
    expect(web.ports).toEqual([{ hostIp: '127.0.0.1', published: '8000', target: 8000, protocol: 'tcp' }]);
    expect(web.healthcheck).toMatchObject({ test: ['CMD-SHELL', 'curl -fsS --max-time 5 http://localhost:8000/healthz || exit 1'], startPeriodMs: 90_000 });
    expect(web.stopGracePeriodMs).toBe(120_000);
    expect(gunicornOf(web)).toMatchObject({ workers: 3, threads: 2, timeoutS: 120, keepAliveS: 5, maxRequests: 500 });
    expect(plan.services['worker']!.environment['CELERY_QUEUES']?.value).toBe('default,emails');
    expect(plan.services['worker']!.healthcheck).toBeNull();
    expect(plan.services['proxy']!.command).toEqual(['nginx', '-g', 'daemon off;']);
    // Secrets: from the env file, or by their name.
    expect(web.environment['SECRET_KEY']).toEqual({ value: 'fixture-shop-secret', sensitive: true });
    expect(web.environment['DATABASE_URL']?.sensitive).toBe(true); // postgres://shop:devpass@db
    expect(plan.services['db']!.environment['POSTGRES_PASSWORD']).toEqual({ value: 'devpass', sensitive: true });
  });
});

describe('secrets in plans', () => {
  it('marks URLs with credentials as sensitive, and keeps values out of interpolation errors', () => {
    const read = memory({ '/p/c.yml': 'services:\n  web-1:\n    image: x\n    environment:\n      REDIS_URL: redis://:Hunter2-db-pass@redis:6379/0\n      PLAIN_URL: redis://redis:6379/0\n' });
    const s = loadPlan({ files: ['/p/c.yml'], env: {}, readFile: read }).services['web-1']!;
    expect(s.environment['REDIS_URL']?.sensitive).toBe(true);
    expect(s.environment['PLAIN_URL']?.sensitive).toBe(false);
    const bad = memory({ '/p/c.yml': 'services:\n  web-1:\n    image: x\n    environment:\n      - DJANGO_SECRET_KEY=s3cr3t-value${x\n' });
    expect(() => loadPlan({ files: ['/p/c.yml'], env: {}, readFile: bad })).toThrow('/p/c.yml:5:9: services.web-1.environment.0: invalid interpolation format: missing "}"');
  });
});

/** loadPlan on one in-memory file; its error, if it throws. */
function errorOf(text: string): unknown {
  try {
    loadPlan({ files: ['/p/c.yml'], env: {}, readFile: memory({ '/p/c.yml': text }) });
  } catch (err) {
    return err;
  }
  return undefined;
}

describe('bad input found by the property test (test/unit/property-bad-input.test.ts)', () => {
  it('an alias inside the mapping it names is a PlanError at the alias, not a stack overflow', () => {
    expect(errorOf('services:\n  web-1:\n    image: x\nx-arena-deploy:\n  memory-model: &m\n    base: *m\n')).toEqual(
      new PlanError('invalid YAML: x-arena-deploy.memory-model.base is an alias of a mapping or list that contains it (a circular reference)', { file: '/p/c.yml', line: 6, col: 11 }),
    );
    // The same alias used twice side by side is fine.
    expect(errorOf('x-env: &e\n  A: "1"\nservices:\n  web-1:\n    image: x\n    environment: *e\n  web-2:\n    image: x\n    environment: *e\n')).toBeUndefined();
  });

  it('network aliases that are not a list of names are a PlanError, not a TypeError in the analysis', () => {
    expect(errorOf('services:\n  web-1:\n    image: x\n    networks:\n      arena:\n        aliases: 5\n')).toEqual(
      new PlanError('services.web-1.networks.arena.aliases: must be a list of names', { file: '/p/c.yml', line: 6, col: 18 }),
    );
  });

  it("services named after Object.prototype's members are services like any other, and others are not inherited", () => {
    const read = memory({ '/p/c.yml': 'services:\n  constructor:\n    image: x\n  web-1:\n    image: x\n    environment:\n      toString: "1"\n' });
    const plan = loadPlan({ files: ['/p/c.yml'], env: {}, readFile: read });
    expect(Object.keys(plan.services)).toEqual(['constructor', 'web-1']);
    expect(plan.services['toString']).toBeUndefined();
    expect(plan.services['web-1']!.environment['valueOf']).toBeUndefined();
    expect(plan.services['web-1']!.raw['hasOwnProperty']).toBeUndefined();
    // The planner used to call gunicornOf(Object.prototype.constructor) for the service the current plan "had".
    const current = loadPlan({ files: [path.join(root, 'fixtures/compose/arena/docker-compose.loadbalanced.yml')], env: {} });
    expect(planRollout({ target: plan, current, live: [], policy: {} }).services.map((s) => [s.service, s.action])).toEqual([['constructor', 'create'], ['web-1', 'create']]);
  });

  it('a key named __proto__ is a key, not a prototype', () => {
    const read = memory({ '/p/c.yml': 'services:\n  web-1:\n    image: x\n    environment:\n      __proto__: "1"\n    depends_on:\n      - __proto__: null\n' });
    const s = loadPlan({ files: ['/p/c.yml'], env: {}, readFile: read }).services['web-1']!;
    expect(s.environment['__proto__']).toEqual({ value: '1', sensitive: false });
    // A mapping without a prototype used to make String() throw a TypeError here.
    expect(s.dependsOn).toEqual(['[object Object]']);
  });

  it('a mapping or a list as a mapping key is a PlanError at the key, not a warning on stderr', () => {
    expect(errorOf('services:\n  web-1:\n    image: x\n    labels:\n      ? [a, b]\n      : c\n')).toEqual(
      new PlanError('invalid YAML: a mapping key must be a plain value, not a mapping or a list', { file: '/p/c.yml', line: 5, col: 9 }),
    );
  });

  it('a merge key with something else than mappings is a PlanError on the line of the <<, not at 1:1', () => {
    expect(errorOf('x-a: &a 5\nservices:\n  web-1:\n    image: x\n    labels:\n      <<: *a\n')).toEqual(
      new PlanError('invalid YAML: a merge key (<<) takes a mapping, an alias of one, or a list of them', { file: '/p/c.yml', line: 6, col: 7 }),
    );
    expect(errorOf('services:\n  web-1:\n    <<:\n      - image: x\n      - [1]\n')).toEqual(
      new PlanError('invalid YAML: a merge key (<<) takes a mapping, an alias of one, or a list of them', { file: '/p/c.yml', line: 3, col: 5 }),
    );
  });

  it('errors stay one line when the file has newlines, tabs or CRs where they do not belong', () => {
    // A service name compose refuses; it also ended up verbatim in the planner's messages.
    expect(errorOf('services:\n  "web\\n2":\n    image: x\n')).toEqual(
      new PlanError('services: "web\\n2" is not a valid service name (compose allows only letters, digits, ".", "_" and "-")', { file: '/p/c.yml', line: 2, col: 3 }),
    );
    expect(errorOf('x-arena-deploy:\n  services: "web-*\\n"\nservices:\n  web-1:\n    image: x\n')).toEqual(new PlanError('x-arena-deploy.services: must be a glob string such as "web-*"', { file: '/p/c.yml', line: 2, col: 13 }));
    // yaml quotes the source in some of its messages.
    expect((errorOf('services: "x\\\r"\n') as Error).message).toBe('/p/c.yml:1:13: invalid YAML: Invalid escape sequence \\\\r');
    expect((errorOf('services:\n  web-1:\n    image: "${\rTAG}"\n') as Error).message).toBe('/p/c.yml:3:12: services.web-1.image: invalid interpolation format: "${\\rTAG}" is not a variable expression');
  });

  it('a value merged in with << has a position: its own, else the nearest enclosing one', () => {
    expect(errorOf('services:\n  web-1:\n    <<: { image: "app:${TAG:?set TAG}" }\n')).toEqual(
      new PlanError('services.web-1.image: required variable TAG is missing a value: set TAG', { file: '/p/c.yml', line: 3, col: 18 }),
    );
    expect(errorOf('services:\n  web-1:\n    <<: [{ image: "app:${TAG:?set TAG}" }]\n')).toEqual(
      new PlanError('services.web-1.image: required variable TAG is missing a value: set TAG', { file: '/p/c.yml', line: 2, col: 3 }),
    );
    expect(errorOf('"${X:?set X}"\n')).toEqual(new PlanError('the document: required variable X is missing a value: set X', { file: '/p/c.yml', line: 1, col: 1 }));
  });

  it('shows infinite numbers as YAML writes them, and empty keys quoted', () => {
    expect((errorOf('services:\n  web-1:\n    image: x\n    cpus: .inf\n') as Error).message).toBe('/p/c.yml:4:11: services.web-1.cpus: .inf is not a number of CPUs');
    expect((errorOf('x-arena-deploy:\n  "": 1\nservices:\n  web-1:\n    image: x\n') as Error).message).toBe('/p/c.yml:2:3: x-arena-deploy: unknown keys: ""');
  });
});
