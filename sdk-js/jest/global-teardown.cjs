// global-teardown.cjs: Jest globalTeardown: stops the broker that global-setup.cjs started, if it started one.
'use strict';

const STARTED = Symbol.for('fixture-broker.jest.started');

module.exports = async function fixtureBrokerGlobalTeardown() {
  const broker = globalThis[STARTED];
  if (!broker) return;
  globalThis[STARTED] = undefined;
  if (process.env.FIXTURE_BROKER_URL === broker.url) delete process.env.FIXTURE_BROKER_URL;
  await broker.stop();
};
