// jest.config.cjs: the warm-broker suite's Jest project (test/warm.test.mjs runs it twice and in watch mode).
//
// Its second root, $FXB_WARM_TRIGGER, is a directory the test writes a file into to make
// Jest's watch mode run again.
'use strict';

module.exports = {
  rootDir: __dirname,
  roots: [__dirname, process.env.FXB_WARM_TRIGGER || __dirname],
  /* The preset by path: this directory is a project of its own (package.json). */
  ...require('../../jest-preset.cjs'),
  testMatch: ['<rootDir>/*.test.cjs'],
  testEnvironmentOptions: {
    brokerArgs: ['--ports', '28400-28449'],
  },
};
