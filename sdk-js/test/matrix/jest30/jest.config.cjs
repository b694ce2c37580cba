// jest.config.cjs: the runner matrix's Jest project: the installed package's preset, two workers.
'use strict';

module.exports = {
  rootDir: __dirname,
  preset: 'fixture-broker',
  testMatch: ['<rootDir>/*.test.cjs'],
  maxWorkers: 2,
  testEnvironmentOptions: { fixtures: { http: 'port', db: { kind: 'postgres' } } },
};
