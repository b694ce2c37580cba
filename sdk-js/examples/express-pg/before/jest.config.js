// jest.config.js (before): the same suite written without the broker: ports from JEST_WORKER_ID, one shared database, run it in band.
//
//   DATABASE_URL=postgres://user:password@127.0.0.1:5432/orders_test npx jest --config before/jest.config.js --runInBand
'use strict';

module.exports = {
  rootDir: __dirname,
  testEnvironment: 'node',
  testMatch: ['<rootDir>/*.test.js'],
  globalSetup: '<rootDir>/global-setup.js',
};
