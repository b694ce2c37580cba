// jest.config.js: the example suite on Fixture Broker: every test file gets its own API server and database, whatever the number of workers.
//
// With FIXTURE_BROKER_URL unset, the preset's global setup starts a broker for the run with
// this directory's fixture-broker.json (the "api" server template and the "app" database
// template); with it set, that broker must have been started with the same configuration.
// Run Jest from this directory: the configuration's relative paths (the server's and the
// migration's commands, the template's inputs) are the broker's working directory's.
'use strict';

const path = require('node:path');

module.exports = {
  rootDir: __dirname,
  preset: 'fixture-broker',
  testMatch: ['<rootDir>/test/**/*.test.js'],
  testEnvironmentOptions: {
    brokerArgs: ['--config', path.join(__dirname, 'fixture-broker.json')],
  },
};
