import { describe, expect, it } from 'vitest';
import { loadPlan } from '../../src/plan/load-plan.js';
import { diffServices } from '../../src/plan/diff-services.js';

function service(yaml: string) {
  const plan = loadPlan({ files: ['/plans/compose.yml'], env: {}, readFile: (f) => (f === '/plans/compose.yml' ? yaml : (() => { throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' }); })()) });
  return plan.services['db'];
}

describe('diffServices', () => {
  it('names a change of named volume', () => {
    const a = service('services:\n  db:\n    image: postgres:16\n    volumes: ["pg-old:/var/lib/postgresql/data"]\nvolumes: {pg-old: {}, pg-new: {}}\n');
    const b = service('services:\n  db:\n    image: postgres:16\n    volumes: ["pg-new:/var/lib/postgresql/data"]\nvolumes: {pg-old: {}, pg-new: {}}\n');
    const changes = diffServices(a, b!);
    expect(changes).toHaveLength(1);
    expect(changes[0]?.field).toBe('volumes');
    expect(changes[0]?.from).toContain('pg-old');
    expect(changes[0]?.to).toContain('pg-new');
  });

  it('masks the service\'s secrets inside other keys before clipping them, so no part of one shows', () => {
    const secret = 'a-long-planted-password-value-0123456789';
    const a = service(`services:\n  db:\n    image: postgres:16\n    environment: {POSTGRES_PASSWORD: "${secret}"}\n`);
    const b = service(`services:\n  db:\n    image: postgres:16\n    environment: {POSTGRES_PASSWORD: "${secret}"}\n    labels: {com.example.a-rather-long-label-name: "${secret}"}\n`);
    const labels = diffServices(a, b!).find((c) => c.field === 'labels');
    expect(labels?.to).toBe('{"com.example.a-rather-long-label-name":"[REDACTED]"}');
    expect(labels?.to).not.toContain(secret.slice(0, 8));
  });
});
