// jest.config.cjs: a Jest run in which one worker is killed mid-file (run by runners.test.mjs, expected to fail).
'use strict';

module.exports = {
  rootDir: __dirname,
  preset: 'fixture-broker',
  testMatch: ['<rootDir>/*.test.cjs'],
  maxWorkers: 2,
  testEnvironmentOptions: {
    fixtures: { http: { kind: 'port' } },
  },
};
