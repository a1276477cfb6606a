import { describe, expect, it } from 'vitest';
import { parseGunicorn } from '../../src/plan/gunicorn.js';

const KEY_COMMAND = 'gunicorn arena_backend.wsgi --bind 0.0.0.0:8000 --workers 4 --worker-class gthread --threads 4 --timeout 300 --graceful-timeout 60 --keep-alive 75 --max-requests 1000 --max-requests-jitter 100 --worker-tmp-dir /dev/shm'.split(' ');

describe('parseGunicorn', () => {
  it("reads the guide's key gunicorn command", () => {
    expect(parseGunicorn(KEY_COMMAND)).toEqual({
      app: 'arena_backend.wsgi',
      workers: 4,
      threads: 4,
      workerClass: 'gthread',
      timeoutS: 300,
      gracefulTimeoutS: 60,
      keepAliveS: 75,
      maxRequests: 1000,
      maxRequestsJitter: 100,
      workerTmpDir: '/dev/shm',
      bind: ['0.0.0.0:8000'],
      configFile: undefined,
      unknown: [],
    });
  });

  it('fills in gunicorn defaults and switches sync to gthread with threads', () => {
    const g = parseGunicorn(['gunicorn', 'app:wsgi', '--threads=6', '-w12']);
    expect(g).toMatchObject({ workers: 12, threads: 6, workerClass: 'gthread', timeoutS: 30, gracefulTimeoutS: 30, keepAliveS: 2, maxRequests: 0, workerTmpDir: undefined });
  });

  it('reads GUNICORN_CMD_ARGS, with the command line winning', () => {
    const g = parseGunicorn(['gunicorn', 'app', '--workers', '3'], '--workers 9 --timeout 120');
    expect(g?.workers).toBe(3);
    expect(g?.timeoutS).toBe(120);
  });

  it('looks into sh -c and python -m gunicorn', () => {
    expect(parseGunicorn(['sh', '-c', 'exec gunicorn app --workers 5'])?.workers).toBe(5);
    expect(parseGunicorn(['python3', '-m', 'gunicorn', 'app', '-w', '2'])?.workers).toBe(2);
  });

  it('is undefined for other programs', () => {
    expect(parseGunicorn(['nginx', '-g', 'daemon off;'])).toBeUndefined();
  });
});
