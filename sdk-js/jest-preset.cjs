// jest-preset.cjs: the Jest preset of fixture-broker (`preset: 'fixture-broker'`): global setup, teardown, environment.
'use strict';

module.exports = {
  globalSetup: require.resolve('./jest/global-setup.cjs'),
  globalTeardown: require.resolve('./jest/global-teardown.cjs'),
  testEnvironment: require.resolve('./jest/environment.cjs'),
};
