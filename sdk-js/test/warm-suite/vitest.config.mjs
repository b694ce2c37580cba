// vitest.config.mjs: the warm-broker suite's Vitest project: the same project root as Jest's, so the same warm broker.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    root: fileURLToPath(new URL('.', import.meta.url)),
    include: ['*.test.mjs'],
    globalSetup: ['../../vitest/global-setup.mjs'],
    setupFiles: ['../../vitest/setup.mjs'],
    provide: { fixtureBroker: { brokerArgs: ['--ports', '28400-28449'] } },
  },
});
