/** Regressions from a review with real-world files: no false errors on valid setups, no missed OOMs. */
import { describe, expect, it } from 'vitest';
import { loadPlan } from '../../src/plan/load-plan.js';
import { nginxTime, parseNginx, combineNginx, NginxParseError } from '../../src/plan/nginx.js';
import { analyzePlan } from '../../src/analysis/analyze-plan.js';
import { gunicornOf } from '../../src/plan/gunicorn.js';

const GiB = 1024 ** 3;
function plan(yaml: string, extra: Record<string, string> = {}, env: Record<string, string> = {}) {
  const files: Record<string, string> = { '/p/c.yml': yaml, ...extra };
  return loadPlan({ files: ['/p/c.yml'], env, readFile: (f) => {
    const t = files[f];
    if (t === undefined) throw Object.assign(new Error('no'), { code: 'ENOENT' });
    return t;
  } });
}
const rulesOf = (p: ReturnType<typeof plan>, nginx?: string, host = { cpus: 16, memoryBytes: 64 * GiB, reserveMemoryBytes: GiB, source: 'flags' as const }) =>
  analyzePlan(p, { host, nginx: nginx ? new Map([['nginx', parseNginx(nginx)]]) : new Map() }).findings;

const WEB = 'services:\n  web-1:\n    image: x\n    command: gunicorn app --threads 2 --keep-alive 75 --max-requests 9 --max-requests-jitter 1 --worker-tmp-dir /dev/shm --timeout 300\n';

describe('nginx setups that are valid', () => {
  it('a direct proxy_pass, container_name, an alias and hosts outside the plan give no upstream-mismatch', () => {
    const p = plan(`${WEB}    container_name: arena-web-1\n    networks:\n      default:\n        aliases: [api]\n  nginx:\n    image: n\n`);
    const conf = 'upstream a { server arena-web-1:8000; server api:8000; server auth.example.com:443; server unix:/run/app.sock; server [::1]:9000; }\nserver { location / { proxy_pass http://a; proxy_read_timeout 300s; } location /direct { proxy_pass http://web-1:8000; proxy_read_timeout 300s; } }';
    expect(rulesOf(p, conf).filter((f) => f.rule === 'upstream-mismatch')).toEqual([]);
  });
  it('reads nginx.conf and conf.d together', () => {
    const both = combineNginx([parseNginx('http { upstream a { server web-1:8000; } include conf.d/*.conf; }'), parseNginx('server { location / { proxy_pass http://a; proxy_read_timeout 300s; } }')]);
    const findings = analyzePlan(plan(`${WEB}  nginx:\n    image: n\n`), { host: undefined, nginx: new Map([['nginx', both]]) }).findings;
    expect(findings.filter((f) => f.rule === 'upstream-mismatch' || f.rule === 'proxy-timeout-shorter-than-gunicorn')).toEqual([]);
    expect(findings.map((f) => f.rule)).toContain('nginx-include-not-followed');
  });
  it('takes the proxy_read_timeout in force where web-1 is proxied, not the smallest anywhere', () => {
    const p = plan(`${WEB}  nginx:\n    image: n\n`);
    const conf = 'proxy_read_timeout 10s;\nupstream a { server web-1:8000; }\nserver { location / { proxy_pass http://a; proxy_read_timeout 300s; } location /auth { proxy_pass https://auth.example.com; } }';
    expect(rulesOf(p, conf).filter((f) => f.rule === 'proxy-timeout-shorter-than-gunicorn')).toEqual([]);
    const short = 'upstream a { server web-1:8000; }\nserver { location / { proxy_pass http://a; } }';
    expect(rulesOf(p, short).find((f) => f.rule === 'proxy-timeout-shorter-than-gunicorn')?.values).toEqual({ proxyReadTimeoutS: 60, gunicornTimeoutS: 300 });
  });
  it('reads nginx time units and odd but valid syntax, and gives the line of an error', () => {
    expect(nginxTime('1d')).toBe(86_400_000);
    expect(nginxTime('1h 30m')).toBe(5_400_000);
    expect(nginxTime('500ms')).toBe(500);
    const c = parseNginx('server {\n  set $brace "{";\n  location /x#y { proxy_pass http://web-1:8000; }\n}\n');
    expect(c.proxyPasses).toEqual([{ target: 'web-1', readTimeoutMs: 60_000 }]);
    try {
      parseNginx('server {\n  location / {\n    proxy_pass http://a\n  }\n');
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(NginxParseError);
      expect((err as NginxParseError).line).toBe(3);
    }
  });
  it('does not warn about keep-alive for sync workers, which close every connection', () => {
    const p = plan('services:\n  web-1:\n    image: x\n    command: gunicorn app -w 2 --max-requests 9 --max-requests-jitter 1 --worker-tmp-dir /dev/shm\n  nginx:\n    image: n\n');
    expect(rulesOf(p, 'upstream a { server web-1:8000; keepalive 8; }\nserver { location / { proxy_pass http://a; proxy_read_timeout 60s; } }').map((f) => f.rule)).not.toContain('keepalive-mismatch');
  });
});

describe('gunicorn numbers other people write', () => {
  const limit = '    mem_limit: 3072m\n';
  it('WEB_CONCURRENCY sets the workers when the command does not', () => {
    const p = plan(`services:\n  web-1:\n    image: x\n    command: gunicorn app\n    environment: [WEB_CONCURRENCY=12]\n${limit}`);
    expect(rulesOf(p).find((f) => f.rule === 'memory-overcommit')?.values).toMatchObject({ estimatedMb: 4000, limitMb: 3072 });
  });
  it('looks into sh -ec and bash -lc', () => {
    expect(gunicornOf(plan(`services:\n  web-1:\n    image: x\n    command: ["/bin/sh", "-ec", "cd /app && exec gunicorn app -w 12"]\n`).services['web-1']!)?.workers).toBe(12);
    expect(gunicornOf(plan(`services:\n  web-1:\n    image: x\n    command: ["bash", "-lc", "gunicorn app -w 12"]\n`).services['web-1']!)?.workers).toBe(12);
  });
  it('says the numbers are unknown for a config file or a variable, and estimates nothing', () => {
    const f1 = rulesOf(plan(`services:\n  web-1:\n    image: x\n    command: gunicorn -c /app/gunicorn.conf.py app\n${limit}`));
    expect(f1.map((f) => f.rule)).toEqual(['gunicorn-settings-unknown']);
    const f2 = rulesOf(plan(`services:\n  web-1:\n    image: x\n    command: ["sh", "-c", "exec gunicorn app --workers $$WORKERS --max-requests 9 --max-requests-jitter 1 --worker-tmp-dir /dev/shm"]\n${limit}`));
    expect(f2.map((f) => f.rule)).toContain('gunicorn-settings-unknown');
    expect(f2.map((f) => f.rule)).not.toContain('memory-overcommit');
    expect(f2.map((f) => f.rule)).not.toContain('workers-formula');
  });
});

describe('compose semantics', () => {
  it('leaves out services behind inactive profiles', () => {
    const yaml = `${WEB}  debug:\n    image: d\n    profiles: [debug]\n`;
    expect(Object.keys(plan(yaml).services)).toEqual(['web-1']);
    expect(Object.keys(plan(yaml, {}, { COMPOSE_PROFILES: 'debug' }).services)).toEqual(['web-1', 'debug']);
  });
  it('reads 0 limits as no limit', () => {
    expect(plan('services:\n  a:\n    image: x\n    mem_limit: 0\n    cpus: 0\n').services['a']!.limits).toEqual({ cpus: undefined, memoryBytes: undefined });
  });
  it('reads .env like compose: quoted values with comments, and earlier variables', () => {
    const p = plan('services:\n  a:\n    image: x\n    mem_limit: ${MEM}\n    command: gunicorn app --threads ${T}\n', { '/p/.env': 'MEM="2g"   # q\nBASE=3\nT=${BASE}\n' });
    expect(p.services['a']!.limits.memoryBytes).toBe(2 * GiB);
    expect(gunicornOf(p.services['a']!)?.threads).toBe(3);
  });
  it('a CPU limit above the host is an error: the engine refuses the container', () => {
    const p = plan('services:\n  a:\n    image: x\n    cpus: 8\n');
    expect(rulesOf(p, undefined, { cpus: 4, memoryBytes: 16 * GiB, reserveMemoryBytes: GiB, source: 'flags' }).find((f) => f.rule === 'cpu-limit-exceeds-host')).toMatchObject({ severity: 'error', values: { cpus: 8, hostCpus: 4 } });
  });
});
