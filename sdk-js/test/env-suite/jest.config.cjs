// jest.config.cjs: an env-configured app required in-process, with no bridge file: testEnvironmentOptions.env.
'use strict';

module.exports = {
  rootDir: __dirname,
  ...require('../../jest-preset.cjs'),
  testMatch: ['<rootDir>/*.test.cjs'],
  testEnvironmentOptions: {
    fixtures: { db: { kind: 'postgres' }, http: 'port' },
    env: { DATABASE_URL: 'db.url', PORT: 'http.port', 'DB_*': 'db', 'PG*': 'db' },
  },
};
