// vitest.config.mjs: the env mapping with Vitest: the variables are set in beforeAll.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    root: fileURLToPath(new URL('.', import.meta.url)),
    include: ['*.test.mjs'],
    globalSetup: ['../../vitest/global-setup.mjs'],
    setupFiles: ['../../vitest/setup.mjs'],
    provide: {
      fixtureBroker: {
        fixtures: { db: { kind: 'postgres' }, http: 'port' },
        env: { DATABASE_URL: 'db.url', PORT: 'http.port', 'DB_*': 'db' },
      },
    },
  },
});
