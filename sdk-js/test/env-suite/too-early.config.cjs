// too-early.config.cjs: a setupFiles module that reads `fixtures`, which Jest runs before the environment leases them.
'use strict';

module.exports = {
  ...require('./jest.config.cjs'),
  setupFiles: ['<rootDir>/reads-fixtures.cjs'],
};
