// global-setup.mjs: Vitest globalSetup: use $FIXTURE_BROKER_URL, or start a broker for this run; provide its URL to the workers.
//
// Runs once in Vitest's main process. The URL reaches the workers through
// `project.provide('fixtureBroker', {url, ...})`, read with `inject('fixtureBroker')` in
// vitest/setup.mjs; members of `test.provide.fixtureBroker` in the Vitest config (default
// fixtures, waitMs, brokerArgs) are passed along with it. The function it returns stops the
// broker it started.
import cjs from '../index.cjs';
import brokerProcess from '../lib/broker-process.cjs';

const { connect } = cjs;
const { startBroker } = brokerProcess;

export default async function fixtureBrokerGlobalSetup(project) {
  const configured = (project && project.config && project.config.provide &&
    project.config.provide.fixtureBroker) || {};
  let broker = null;
  let url = process.env.FIXTURE_BROKER_URL;
  if (url) {
    const client = await connect({ url, client: 'vitest-global-setup' });
    await client.close();
  } else {
    broker = await startBroker({ args: configured.brokerArgs });
    url = broker.url;
    process.env.FIXTURE_BROKER_URL = url;
  }
  project.provide('fixtureBroker', { ...configured, url });
  return async () => {
    if (!broker) return;
    if (process.env.FIXTURE_BROKER_URL === broker.url) delete process.env.FIXTURE_BROKER_URL;
    await broker.stop();
  };
}
