import { defineConfig } from 'vitest/config';

// 2 cores: at most two test files at a time; integration tests own real processes and ports.
export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**', 'dashboards/dist/**', 'data/**'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
