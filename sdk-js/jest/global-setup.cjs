// global-setup.cjs: Jest globalSetup: use $FIXTURE_BROKER_URL, or start a broker for this run and export its URL.
//
// Runs once in Jest's parent process. With FIXTURE_BROKER_URL set it only checks that the
// broker answers. Otherwise it starts the broker binary (FIXTURE_BROKER_BIN, `fixture-broker`
// on PATH, or ../build/fixture-broker next to this package) on 127.0.0.1:0, waits for its
// `listening` line and sets FIXTURE_BROKER_URL in process.env, which the workers inherit.
// Extra broker flags come from testEnvironmentOptions.brokerArgs and $FIXTURE_BROKER_ARGS.
// global-teardown.cjs stops what this started; if Jest never gets there (Ctrl-C), the broker
// gets SIGTERM when this process exits, or SIGINT with the terminal's process group.
'use strict';

const { startBroker } = require('../lib/broker-process.cjs');
const { connect } = require('../lib/client.cjs');

const STARTED = Symbol.for('fixture-broker.jest.started');

module.exports = async function fixtureBrokerGlobalSetup(globalConfig, projectConfig) {
  const options = (projectConfig && projectConfig.testEnvironmentOptions) || {};
  if (process.env.FIXTURE_BROKER_URL) {
    const client = await connect({ client: 'jest-global-setup' });
    await client.close();
    return;
  }
  const broker = await startBroker({ args: options.brokerArgs });
  globalThis[STARTED] = broker;
  process.env.FIXTURE_BROKER_URL = broker.url;
};
