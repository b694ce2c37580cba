// global-setup.cjs: Jest globalSetup: use $FIXTURE_BROKER_URL, else the project's warm broker (started if needed).
//
// Runs once in Jest's parent process (once per run, and again before each run in watch
// mode). With FIXTURE_BROKER_URL set by the user it only checks that the broker answers.
// Otherwise it finds or starts the project's warm broker (lib/warm.cjs: one per user and
// rootDir, reused by every run and by watch mode, stopping itself after idleExitMs without
// sessions) and sets FIXTURE_BROKER_URL in process.env, which the workers inherit. With
// FIXTURE_BROKER_WARM=0 it starts a private broker for this run instead (the binary:
// FIXTURE_BROKER_BIN, the platform package, `fixture-broker` on PATH, or
// ../build/fixture-broker next to this package), which global-teardown.cjs stops. Extra
// broker flags come from testEnvironmentOptions.brokerArgs and $FIXTURE_BROKER_ARGS.
'use strict';

const { startBroker } = require('../lib/broker-process.cjs');
const { connect } = require('../lib/client.cjs');
const warm = require('../lib/warm.cjs');

const STARTED = Symbol.for('fixture-broker.jest.started');
const WARM_URL = Symbol.for('fixture-broker.jest.warm-url');

module.exports = async function fixtureBrokerGlobalSetup(globalConfig, projectConfig) {
  const options = (projectConfig && projectConfig.testEnvironmentOptions) || {};
  const url = process.env.FIXTURE_BROKER_URL;
  /* A URL this process set for a warm broker (an earlier run in watch mode) is looked up
   * again: the broker may have stopped while idle. */
  if (url && url !== globalThis[WARM_URL]) {
    const client = await connect({ client: 'jest-global-setup' });
    await client.close();
    return;
  }
  if (warm.warmEnabled()) {
    const found = await warm.ensure({
      projectRoot: (globalConfig && globalConfig.rootDir) || (projectConfig && projectConfig.rootDir)
        || process.cwd(),
      args: options.brokerArgs,
      idleExitMs: options.idleExitMs,
    });
    globalThis[WARM_URL] = found.url;
    process.env.FIXTURE_BROKER_URL = found.url;
    return;
  }
  const broker = await startBroker({ args: options.brokerArgs });
  globalThis[STARTED] = broker;
  process.env.FIXTURE_BROKER_URL = broker.url;
};
