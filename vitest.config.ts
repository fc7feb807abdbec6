import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**', '.kafka/**'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // chdb holds one data directory per process: keep test files in separate forks.
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2 } },
  },
});
