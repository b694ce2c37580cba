// jest.config.js: what a new user writes: the preset, the broker's configuration, a port for every file.
'use strict';

const path = require('node:path');

module.exports = {
  preset: 'fixture-broker',
  testEnvironmentOptions: {
    brokerArgs: ['--config', path.join(__dirname, 'fixture-broker.json')],
    fixtures: { http: 'port' },
  },
};
