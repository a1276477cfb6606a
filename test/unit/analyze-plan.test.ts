import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadPlan } from '../../src/plan/load-plan.js';
import { parseNginx } from '../../src/plan/nginx.js';
import { analyzePlan, probeTimeoutMs, type Host } from '../../src/analysis/analyze-plan.js';

const root = path.resolve(import.meta.dirname, '..', '..');
const GiB = 1024 ** 3;
const host16: Host = { cpus: 16, memoryBytes: 64 * GiB, reserveMemoryBytes: 2 * GiB, source: 'flags' };

function analyze(file: string, host: Host | null = host16) {
  const plan = loadPlan({ files: [path.join(root, 'plans', file)], env: {} });
  const nginx = new Map([['nginx', parseNginx(readFileSync(plan.services['nginx']!.bindMounts[0]!.source, 'utf8'))]]);
  return analyzePlan(plan, { host: host ?? undefined, nginx });
}

const rules = (a: ReturnType<typeof analyze>, rule: string) => a.findings.filter((f) => f.rule === rule);

describe('the original plan: the guide diagnosis', () => {
  const a = analyze('docker-compose.loadbalanced.yml');
  it('memory-overcommit on every web service: 200 + 12 × 300 + 200 = 4000 MB against 3072 MB, over by 928', () => {
    const f = rules(a, 'memory-overcommit');
    expect(f.map((x) => x.service)).toEqual(['web-1', 'web-2', 'web-3', 'web-4', 'web-5', 'web-6', 'web-7', 'web-8', 'web-9', 'web-10']);
    expect(f[0]).toMatchObject({ severity: 'error', values: { estimatedMb: 4000, limitMb: 3072, overByMb: 928 } });
  });
  it('host-cpu-overcommit: 22 of 16 vCPUs, 137.5 %, nginx unlimited', () => {
    expect(rules(a, 'host-cpu-overcommit')).toEqual([
      expect.objectContaining({ severity: 'warning', values: { limitCpus: 22, hostCpus: 16, ratioPct: 137.5, unlimited: 'nginx' } }),
    ]);
  });
  it('health-timeout-too-short: 10 s against a 900 s gunicorn timeout', () => {
    expect(rules(a, 'health-timeout-too-short')[0]).toMatchObject({ service: 'web-1', values: { healthTimeoutS: 10, toleranceS: 30, gunicornTimeoutS: 900 } });
  });
  it('the guide leak and heartbeat fixes are missing, and the stop grace is shorter than the graceful timeout', () => {
    expect(rules(a, 'missing-max-requests')).toHaveLength(10);
    expect(rules(a, 'worker-tmp-dir-not-shm')).toHaveLength(10);
    expect(rules(a, 'stop-grace-shorter-than-graceful-timeout')[0]?.values).toEqual({ stopGracePeriodS: 10, gracefulTimeoutS: 120 });
  });
  it('computes the tables: 720 concurrent handlers, -928 MB headroom', () => {
    expect(a.tables.totals.handlers).toBe(720);
    expect(a.tables.services.find((r) => r.service === 'web-1')).toMatchObject({ estimatedMemoryMb: 4000, headroomMb: -928, handlers: 72 });
  });
});

describe('the optimized plan', () => {
  const a = analyze('docker-compose.loadbalanced.optimized.yml');
  it('has no errors: 1600 MB against 5120 MB, headroom 3520 MB, 96 handlers', () => {
    expect(a.findings.filter((f) => f.severity === 'error')).toEqual([]);
    expect(a.tables.services.find((r) => r.service === 'web-1')).toMatchObject({ estimatedMemoryMb: 1600, memoryLimitMb: 5120, headroomMb: 3520, handlers: 16 });
    expect(a.tables.totals.handlers).toBe(96);
    expect(a.tables.totals.rpsAi).toBe(28.8);
    expect(a.tables.totals.rpsFastApi).toBe(1920);
  });
  it('still overcommits CPU limits: 18 of 16 vCPUs, the guide arithmetic slip', () => {
    expect(rules(a, 'host-cpu-overcommit')[0]).toMatchObject({ severity: 'warning', values: { limitCpus: 18, ratioPct: 112.5 } });
  });
  it('states the workers formula plainly: 4 workers where (2 × 2.5) + 1 = 6', () => {
    expect(rules(a, 'workers-formula')[0]).toMatchObject({ severity: 'info', values: { workers: 4, cpus: 2.5, formula: 6 } });
  });
  it('has none of the original plan problems', () => {
    for (const r of ['memory-overcommit', 'health-timeout-too-short', 'missing-max-requests', 'worker-tmp-dir-not-shm', 'keepalive-mismatch', 'proxy-timeout-shorter-than-gunicorn', 'upstream-mismatch', 'stop-grace-shorter-than-graceful-timeout', 'probe-timeout-exceeds-healthcheck']) {
      expect(rules(a, r), r).toEqual([]);
    }
  });
  it('skips host rules without a host and says so', () => {
    const b = analyze('docker-compose.loadbalanced.optimized.yml', null);
    expect(rules(b, 'host-cpu-overcommit')).toEqual([]);
    expect(b.hostSkipped).toMatch(/host rules skipped/);
  });
});

describe('boundaries', () => {
  it('memory exactly at the limit is not an overcommit', () => {
    const plan = loadPlan({ files: ['/p/c.yml'], env: {}, readFile: (f) => {
      if (f !== '/p/c.yml') throw Object.assign(new Error('no'), { code: 'ENOENT' });
      return 'services:\n  web-1:\n    image: x\n    command: gunicorn app --workers 4 --max-requests 10 --max-requests-jitter 1 --worker-tmp-dir /dev/shm\n    deploy:\n      resources:\n        limits:\n          memory: 1600M\n';
    } });
    expect(analyzePlan(plan, { host: undefined, nginx: new Map() }).findings.filter((f) => f.rule === 'memory-overcommit')).toEqual([]);
  });
  it('reads probe limits from curl and wget', () => {
    expect(probeTimeoutMs(['CMD', 'curl', '-f', '--max-time', '25', 'http://x/'])).toBe(25_000);
    expect(probeTimeoutMs(['CMD-SHELL', 'wget -q -T 5 -O- http://x/'])).toBe(5000);
    expect(probeTimeoutMs(['CMD', 'curl', '-m30', 'http://x/'])).toBe(30_000);
    expect(probeTimeoutMs(['CMD', 'curl', 'http://x/'])).toBeUndefined();
  });
});

describe('rule boundaries on small plans', () => {
  const mem = (text: string) => (f: string) => {
    if (f !== '/p/c.yml') throw Object.assign(new Error('no'), { code: 'ENOENT' });
    return text;
  };
  const web = (extra: string, cmd = 'gunicorn app --workers 2 --max-requests 10 --max-requests-jitter 1 --worker-tmp-dir /dev/shm') =>
    `services:\n  web-1:\n    image: x\n    command: ${cmd}\n${extra}`;
  const run = (text: string, opts: Partial<Parameters<typeof analyzePlan>[1]> = {}) =>
    analyzePlan(loadPlan({ files: ['/p/c.yml'], env: {}, readFile: mem(text) }), { host: undefined, nginx: new Map(), ...opts }).findings.map((f) => f.rule);

  it('stop_grace_period equal to the graceful timeout is enough; one second less is not', () => {
    expect(run(web('    stop_grace_period: 30s\n'))).not.toContain('stop-grace-shorter-than-graceful-timeout');
    expect(run(web('    stop_grace_period: 29s\n'))).toContain('stop-grace-shorter-than-graceful-timeout');
  });
  it('a health timeout of exactly the tolerance is fine', () => {
    const hc = (t: string) => web(`    healthcheck:\n      test: ["CMD", "true"]\n      timeout: ${t}\n`, 'gunicorn app --timeout 300 --max-requests 10 --max-requests-jitter 1 --worker-tmp-dir /dev/shm');
    expect(run(hc('30s'))).not.toContain('health-timeout-too-short');
    expect(run(hc('29s'))).toContain('health-timeout-too-short');
  });
  it('a probe limit equal to the health check timeout is flagged', () => {
    const hc = (m: string) => web(`    healthcheck:\n      test: ["CMD", "curl", "-f", "--max-time", "${m}", "http://localhost/"]\n      timeout: 30s\n`);
    expect(run(hc('30'))).toContain('probe-timeout-exceeds-healthcheck');
    expect(run(hc('29'))).not.toContain('probe-timeout-exceeds-healthcheck');
  });
  it('CPU limits exactly at the host are not an overcommit', () => {
    const host = { cpus: 2, memoryBytes: 8 * GiB, reserveMemoryBytes: GiB, source: 'flags' as const };
    const limits = (c: string) => web(`    deploy:\n      resources:\n        limits:\n          cpus: "${c}"\n`);
    expect(run(limits('2'), { host })).not.toContain('host-cpu-overcommit');
    expect(run(limits('2.01'), { host })).toContain('host-cpu-overcommit');
  });
  it('keep-alive equal to nginx keepalive_timeout is a mismatch; above it is not', () => {
    const conf = parseNginx('upstream b { server web-1:8000; keepalive 8; keepalive_timeout 60s; }\nserver { location / { proxy_pass http://b; proxy_read_timeout 30s; } }');
    const rules = (ka: number) => run(web('', `gunicorn app --threads 2 --keep-alive ${ka} --max-requests 10 --max-requests-jitter 1 --worker-tmp-dir /dev/shm`), { nginx: new Map([['nginx', conf]]) });
    expect(rules(60)).toContain('keepalive-mismatch');
    expect(rules(61)).not.toContain('keepalive-mismatch');
    expect(rules(61)).not.toContain('upstream-mismatch');
  });
});

describe('rules that the guide plans do not trigger', () => {
  const optimized = loadPlan({ files: [path.join(root, 'plans', 'docker-compose.loadbalanced.optimized.yml')], env: {} });
  const conf = (text: string) => new Map([['nginx', parseNginx(text)]]);
  const byRule = (a: ReturnType<typeof analyzePlan>, rule: string) => a.findings.filter((f) => f.rule === rule);

  it('upstream-mismatch: nginx still routing to web-7, and web-6 left out of the upstream', () => {
    const a = analyzePlan(optimized, { host: undefined, nginx: conf('upstream b { server web-1:8000; server web-2:8000; server web-3:8000; server web-4:8000; server web-5:8000; server web-7:8000; }\nserver { location / { proxy_pass http://b; proxy_read_timeout 300s; } }') });
    expect(byRule(a, 'upstream-mismatch').map((f) => [f.severity, f.values])).toEqual([
      ['error', { upstreamHost: 'web-7' }],
      ['error', { missing: 'web-6' }],
    ]);
  });
  it('proxy-timeout-shorter-than-gunicorn: nginx default 60 s against gunicorn 300 s', () => {
    const a = analyzePlan(optimized, { host: undefined, nginx: conf('upstream b { server web-1:8000; server web-2:8000; server web-3:8000; server web-4:8000; server web-5:8000; server web-6:8000; }\nserver { location / { proxy_pass http://b; } }') });
    expect(byRule(a, 'proxy-timeout-shorter-than-gunicorn')[0]?.values).toEqual({ proxyReadTimeoutS: 60, gunicornTimeoutS: 300 });
  });
  it('host-memory-overcommit and a CPU reservation error on a small host', () => {
    const a = analyzePlan(optimized, { host: { cpus: 4, memoryBytes: 16 * GiB, reserveMemoryBytes: GiB, source: 'flags' }, nginx: new Map() });
    expect(byRule(a, 'host-memory-overcommit')[0]).toMatchObject({ severity: 'error', values: { limitsMb: 41984, hostMb: 16384, reserveMb: 1024, overByMb: 26624 } });
    expect(byRule(a, 'host-cpu-overcommit').map((f) => f.severity)).toEqual(['warning']);
  });
  it('missing-max-requests-jitter when only --max-requests is set', () => {
    const plan = loadPlan({ files: ['/p/c.yml'], env: {}, readFile: (f) => {
      if (f !== '/p/c.yml') throw Object.assign(new Error('no'), { code: 'ENOENT' });
      return 'services:\n  web-1:\n    image: x\n    command: gunicorn app --max-requests 1000 --worker-tmp-dir /dev/shm\n    deploy:\n      resources:\n        reservations:\n          cpus: "3"\n';
    } });
    const a = analyzePlan(plan, { host: { cpus: 2, memoryBytes: 8 * GiB, reserveMemoryBytes: GiB, source: 'flags' }, nginx: new Map() });
    expect(byRule(a, 'missing-max-requests-jitter')).toHaveLength(1);
    expect(byRule(a, 'host-cpu-overcommit')[0]).toMatchObject({ severity: 'error', values: { reservedCpus: 3, hostCpus: 2 } });
  });
});
