import { describe, expect, it } from 'vitest';
import { parseNginx } from '../../src/plan/nginx.js';
import { diffNginx } from '../../src/plan/diff-nginx.js';

const conf = (servers: string[], read: string, keepalive = '') =>
  parseNginx(`upstream app {\n  least_conn;\n${servers.map((s) => `  server ${s}:8000 max_fails=3;\n`).join('')}${keepalive}}\nserver {\n  listen 80;\n  location / {\n    proxy_pass http://app;\n    proxy_read_timeout ${read};\n  }\n}\n`);

describe('diffNginx', () => {
  it('says which upstream servers, keepalive and read timeouts change', () => {
    const before = conf(['web-1', 'web-2', 'web-3', 'web-4'], '900s');
    const after = conf(['web-1', 'web-2'], '300s', '  keepalive 32;\n');
    expect(diffNginx(before, after)).toEqual([
      { field: 'nginx upstream app servers', from: '4: web-1…web-4 on port 8000, max_fails=3', to: '2: web-1, web-2 on port 8000, max_fails=3' },
      { field: 'nginx upstream app keepalive', from: 'no idle connections, timeout 1m', to: '32 idle connections, timeout 1m' },
      { field: 'nginx proxy_read_timeout', from: 'app: 15m', to: 'app: 5m' },
    ]);
  });

  it('is empty for the same config, and names a config that appears', () => {
    expect(diffNginx(conf(['web-1'], '60s'), conf(['web-1'], '60s'))).toEqual([]);
    expect(diffNginx(undefined, conf(['web-1'], '60s')).map((c) => c.field)).toEqual(['nginx upstream app servers', 'nginx upstream app keepalive', 'nginx proxy_read_timeout']);
  });
});
