// vitest.config.mjs: the Vitest suite that runs the fixture-broker global setup and setup file end to end.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    root: fileURLToPath(new URL('.', import.meta.url)),
    include: ['*.test.mjs'],
    /* The suite's own global setup wraps the package's to record and check the run. */
    globalSetup: ['./suite-setup.mjs'],
    setupFiles: ['fixture-broker/vitest/setup'],
    provide: {
      fixtureBroker: {
        fixtures: { http: { kind: 'port' } },
        waitMs: 30000,
        brokerArgs: ['--ports', '28200-28249'],
      },
    },
  },
});
