// jest.config.cjs: the Jest suite that runs the fixture-broker preset end to end (global setup, environment, teardown).
'use strict';

module.exports = {
  rootDir: __dirname,
  preset: 'fixture-broker',
  /* The suite's own setup and teardown wrap the preset's to record and check the run. */
  globalSetup: '<rootDir>/suite-setup.cjs',
  globalTeardown: '<rootDir>/suite-teardown.cjs',
  testMatch: ['<rootDir>/*.test.cjs'],
  testEnvironmentOptions: {
    fixtures: { http: { kind: 'port' } },
    waitMs: 30000,
    brokerArgs: ['--ports', '28100-28149'],
  },
};
