import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**', '.kafka/**', 'data/**'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // chdb holds one data directory per process: every test file runs in its own fork.
    pool: 'forks',
    maxWorkers: 2,
  },
});
