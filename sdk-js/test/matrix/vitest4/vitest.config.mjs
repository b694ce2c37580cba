// vitest.config.mjs: the runner matrix's Vitest project: two projects, two workers, the installed package's setup.
import { defineConfig } from 'vitest/config';

const fixtureBroker = { fixtures: { http: 'port', db: { kind: 'postgres' } } };

export default defineConfig({
  test: {
    maxWorkers: 2,
    globalSetup: ['fixture-broker/vitest/global-setup'],
    provide: { fixtureBroker },
    projects: [
      {
        extends: true,
        test: { name: 'files', include: ['files/*.test.mjs'], setupFiles: ['fixture-broker/vitest/setup'] },
      },
      { extends: true, test: { name: 'extend', include: ['extend/*.test.mjs'] } },
    ],
  },
});
