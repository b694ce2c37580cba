// suite-setup.cjs: this suite's globalSetup: the preset's (find or start the broker), plus a directory for the files' records.
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const setup = require('fixture-broker/jest/global-setup');

module.exports = async function suiteSetup(globalConfig, projectConfig) {
  await setup(globalConfig, projectConfig);
  process.env.FXB_SUITE_RECORDS = fs.mkdtempSync(path.join(os.tmpdir(), 'fxb-jest-suite-'));
};
