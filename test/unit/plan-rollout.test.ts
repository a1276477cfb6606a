import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadPlan } from '../../src/plan/load-plan.js';
import { planRollout, healthDeadlineMs, type Step } from '../../src/rollout/plan-rollout.js';
import type { ContainerSummary } from '../../src/engine/engine-client.js';
import { ValidationError } from '../../src/errors.js';

const twins = path.resolve(import.meta.dirname, '..', '..', 'fixtures', 'compose', 'arena');
const original = loadPlan({ files: [path.join(twins, 'docker-compose.loadbalanced.yml')], projectName: 'p', env: {} });
const optimized = loadPlan({ files: [path.join(twins, 'docker-compose.loadbalanced.optimized.yml')], projectName: 'p', env: {} });

function liveOf(services: string[], over: Partial<ContainerSummary> = {}): ContainerSummary[] {
  return services.map((service) => ({
    id: `id-${service}`, name: `p-${service}-1`, project: 'p', service, number: 1, state: 'running', health: 'healthy',
    image: 'img', configHash: 'h', configFiles: [], workingDir: twins, ...over,
  }));
}

const liveOriginal = liveOf(Object.keys(original.services));
/** What compose's dry run says for original → optimized: every web and nginx recreated, redis kept. */
const composeView = new Map(Object.keys(optimized.services).map((s) => [s, s === 'redis' ? ('running' as const) : ('recreate' as const)]));

function outline(steps: readonly Step[]): string[] {
  return steps.map((s) => {
    if (s.kind === 'update') return `update ${s.updates.map((u) => u.service).join('+')}`;
    if (s.kind === 'retire') return `retire ${s.services.map((r) => r.service).join('+')}`;
    if (s.kind === 'pause') return `pause ${s.ms}`;
    return s.kind;
  });
}

describe('planRollout', () => {
  it('rolls web-1…web-6 one at a time, then nginx, then retires web-7…web-10, leaving redis alone', () => {
    const plan = planRollout({ target: optimized, current: original, live: liveOriginal, composeView, policy: {} });
    expect(outline(plan.steps)).toEqual([
      'validate', 'preflight', 'backup',
      'update web-1', 'update web-2', 'update web-3', 'update web-4', 'update web-5', 'update web-6',
      'update nginx',
      'retire web-7+web-8+web-9+web-10',
      'verify',
    ]);
    const web1 = plan.steps.find((s) => s.kind === 'update')!;
    expect(web1.kind === 'update' && web1.updates[0]).toMatchObject({ service: 'web-1', action: 'recreate', waitFor: 'healthy', monitorMs: 5000, healthDeadlineMs: 20_000 + 3 * (1000 + 30_000) });
    expect(plan.services.find((d) => d.service === 'redis')).toMatchObject({ role: 'unchanged', action: 'keep' });
    const retire = plan.steps.find((s) => s.kind === 'retire');
    expect(retire?.kind === 'retire' && retire.services[0]).toEqual({ service: 'web-7', containerIds: ['id-web-7'], stopTimeoutS: 10 });
    expect(plan.warnings).toEqual([]);
  });

  it('says per service what changes, from the parsed gunicorn flags', () => {
    const plan = planRollout({ target: optimized, current: original, live: liveOriginal, composeView, policy: {} });
    const web1 = plan.services.find((d) => d.service === 'web-1')!;
    expect(web1.changes.slice(0, 3)).toEqual([
      { field: 'workers', from: '12', to: '4' },
      { field: 'threads', from: '6', to: '4' },
      { field: 'gunicorn timeout', from: '900s', to: '300s' },
    ]);
    expect(web1.changes).toContainEqual({ field: 'memory limit', from: '1152M', to: '1920M' });
    expect(web1.changes).toContainEqual({ field: 'health check timeout', from: '10s', to: '30s' });
  });

  it('resuming, recreates the services that were in flight when the earlier run stopped, even if they look done', () => {
    const done = new Map(Object.keys(optimized.services).map((s) => [s, s === 'web-1' || s === 'web-2' ? ('running' as const) : s === 'redis' ? ('running' as const) : ('recreate' as const)]));
    const plan = planRollout({ target: optimized, current: original, live: liveOriginal, composeView: done, policy: {}, inFlight: ['web-2'] });
    expect(outline(plan.steps).slice(3, 5)).toEqual(['update web-2', 'update web-3']);
    expect(plan.services.find((d) => d.service === 'web-1')?.role).toBe('unchanged');
    expect(plan.services.find((d) => d.service === 'web-2')?.changes.map((c) => c.field)).toContain('workers');
  });

  it('keeps services compose says are unchanged, whatever the field diff says', () => {
    const view = new Map(composeView);
    view.set('web-3', 'running');
    const plan = planRollout({ target: optimized, current: original, live: liveOriginal, composeView: view, policy: {} });
    expect(outline(plan.steps)).not.toContain('update web-3');
    expect(plan.services.find((d) => d.service === 'web-3')?.role).toBe('unchanged');
  });

  it('honours --parallelism and --delay, and --services', () => {
    const plan = planRollout({ target: optimized, current: original, live: liveOriginal, composeView, policy: { parallelism: 4, delayMs: 2000, services: 'web-{1,2,3,4,5,6}' } });
    expect(outline(plan.steps).slice(3, 7)).toEqual(['update web-1+web-2+web-3+web-4', 'pause 2000', 'update web-5+web-6', 'update nginx']);
  });

  it('refuses --services and --include naming services the target lacks', () => {
    expect(() => planRollout({ target: optimized, current: original, live: liveOriginal, composeView, policy: { services: 'web-9' } })).toThrow(ValidationError);
    expect(() => planRollout({ target: optimized, current: original, live: liveOriginal, composeView, policy: { services: 'api-*' } })).toThrow(
      '--services "api-*" matches no service of the target plan (it has nginx, redis, web-1, web-2, web-3, web-4, web-5, web-6).',
    );
    expect(() => planRollout({ target: optimized, current: original, live: liveOriginal, composeView, policy: { include: ['postgres'] } })).toThrow('--include names "postgres", which neither the target plan nor the running fleet has.');
  });

  it('leaves a differing stateful service alone unless included, and says so', () => {
    const view = new Map(composeView);
    view.set('redis', 'recreate');
    const plan = planRollout({ target: optimized, current: original, live: liveOriginal, composeView: view, policy: {} });
    expect(plan.services.find((d) => d.service === 'redis')).toMatchObject({ role: 'stateful', action: 'keep' });
    expect(plan.warnings[0]).toMatch(/^redis differs from the target .* pass --include redis to recreate it\.$/);
    const included = planRollout({ target: optimized, current: original, live: liveOriginal, composeView: view, policy: { include: ['redis'] } });
    expect(outline(included.steps)).toContain('update redis');
  });

  it('creates services the fleet does not run yet, and a stopped container counts as changed', () => {
    const live = liveOf(['web-1', 'web-2', 'web-3', 'web-4', 'web-5', 'nginx', 'redis']).map((c) => (c.service === 'web-2' ? { ...c, state: 'exited' } : c));
    const view = new Map([...composeView].map(([s]) => [s, 'running' as const]));
    const plan = planRollout({ target: optimized, current: optimized, live, composeView: view, policy: {} });
    expect(outline(plan.steps)).toEqual(['validate', 'preflight', 'backup', 'update web-2', 'update web-6', 'verify']);
    expect(plan.services.find((d) => d.service === 'web-6')).toMatchObject({ role: 'added', action: 'create' });
  });

  it('uses --health-timeout and --monitor over the plan', () => {
    const plan = planRollout({ target: optimized, current: original, live: liveOriginal, composeView, policy: { healthTimeoutMs: 5000, monitorMs: 0 } });
    const u = plan.steps.find((s) => s.kind === 'update');
    expect(u?.kind === 'update' && u.updates[0]).toMatchObject({ healthDeadlineMs: 5000, monitorMs: 0 });
  });
});

describe('healthDeadlineMs', () => {
  it('is start_period + retries × (interval + timeout): 60 s + 3 × (30 s + 30 s) for the optimized plan', () => {
    const real = loadPlan({ files: [path.resolve(twins, '..', '..', '..', 'plans', 'docker-compose.loadbalanced.optimized.yml')], env: {} });
    expect(healthDeadlineMs(real.services['web-1']!)).toBe(240_000);
  });
});

describe('ordering and names', () => {
  it('puts nginx after the web services it depends on when --services leaves some out of the rolled batch', () => {
    // Back from the optimized fleet to the original: web-7…web-10 are created, nginx routes to them.
    const live = liveOf(Object.keys(optimized.services));
    const plan = planRollout({ target: original, current: optimized, live, policy: { services: 'web-{1,2}' } });
    const order = outline(plan.steps).filter((s) => s.startsWith('update'));
    expect(order.indexOf('update nginx')).toBeGreaterThan(order.indexOf('update web-10'));
    expect(order.indexOf('update nginx')).toBeGreaterThan(order.indexOf('update web-9'));
  });
  it('compresses numbered runs of names', async () => {
    const { compactNames } = await import('../../src/util/names.js');
    expect(compactNames(['nginx', 'web-2', 'web-1', 'web-3', 'web-10', 'web-4', 'web-5', 'web-6'])).toBe('nginx, web-1…web-6, web-10');
    expect(compactNames(['web-7', 'web-8'])).toBe('web-7, web-8');
  });
});

describe('what a target leaves out', () => {
  it('retires dropped web services but leaves nginx and redis running unless --include names them', () => {
    const onlyWeb1 = loadPlan({ files: ['/p/c.yml'], projectName: 'p', env: {}, readFile: (f) => {
      if (f !== '/p/c.yml') throw Object.assign(new Error('no'), { code: 'ENOENT' });
      return 'services:\n  web-1:\n    image: arena-deploy/backend:fixture\n';
    } });
    const plan = planRollout({ target: onlyWeb1, current: optimized, live: liveOf(Object.keys(optimized.services)), policy: {} });
    const retire = plan.steps.find((s) => s.kind === 'retire');
    expect(retire?.kind === 'retire' && retire.services.map((r) => r.service)).toEqual(['web-2', 'web-3', 'web-4', 'web-5', 'web-6']);
    expect(plan.services.filter((d) => d.role === 'kept').map((d) => d.service)).toEqual(['nginx', 'redis']);
    expect(plan.warnings).toContain('redis runs but is not in the target plan: it is left running (it is not one of the rolled services); pass --include redis to stop and remove it.');
    const withNginx = planRollout({ target: onlyWeb1, current: optimized, live: liveOf(Object.keys(optimized.services)), policy: { include: ['nginx'] } });
    const r2 = withNginx.steps.find((s) => s.kind === 'retire');
    expect(r2?.kind === 'retire' && r2.services.map((r) => r.service)).toContain('nginx');
  });
});

describe('fields the typed view does not cover', () => {
  it('sees labels and extra_hosts added to nginx', () => {
    const read = (extra: string) => (f: string) => {
      if (f !== '/p/c.yml') throw Object.assign(new Error('no'), { code: 'ENOENT' });
      return `services:\n  web-1:\n    image: w\n  nginx:\n    image: n\n    depends_on: [web-1]\n${extra}`;
    };
    const cur = loadPlan({ files: ['/p/c.yml'], projectName: 'p', env: {}, readFile: read('') });
    const tgt = loadPlan({ files: ['/p/c.yml'], projectName: 'p', env: {}, readFile: read('    labels: {team: edge}\n    extra_hosts: ["api:10.0.0.1"]\n') });
    const plan = planRollout({ target: tgt, current: cur, live: liveOf(['web-1', 'nginx']), composeView: new Map([['web-1', 'running' as const]]), policy: {} });
    expect(plan.services.find((d) => d.service === 'nginx')?.changes).toEqual([
      { field: 'extra_hosts', from: 'unset', to: '["api:10.0.0.1"]' },
      { field: 'labels', from: 'unset', to: '{"team":"edge"}' },
    ]);
    expect(outline(plan.steps)).toContain('update nginx');
  });
});
