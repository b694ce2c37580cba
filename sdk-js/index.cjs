// index.cjs: the CommonJS entry of fixture-broker; index.mjs re-exports the same objects for ES modules.
//
// There is one implementation (lib/*.cjs), loaded once per process whichever entry a caller
// uses, so an ES-module test file and a CommonJS Jest environment in the same worker share
// one module-level connection and one FixtureBrokerError class (`instanceof` works across).
'use strict';

const { Client, Lease, connect, DEFAULT_URL, SUBPROTOCOL } = require('./lib/client.cjs');
const { FixtureBrokerError, CLIENT_ERRORS } = require('./lib/errors.cjs');
const { hashFiles, matchFiles } = require('./lib/hash-files.cjs');
const { parseFixturesPragma } = require('./lib/fixture-scope.cjs');

module.exports = {
  connect,
  Client,
  Lease,
  FixtureBrokerError,
  CLIENT_ERRORS,
  hashFiles,
  matchFiles,
  parseFixturesPragma,
  DEFAULT_URL,
  SUBPROTOCOL,
};
module.exports.default = module.exports;
