import { defineConfig } from 'vitest/config';

// Unit tests run in parallel; the end-to-end tests share one Docker engine and run one file at a time.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 20_000,
    hookTimeout: 600_000,
    reporters: ['default'],
  },
});
