// global-setup.mjs: Vitest globalSetup: use $FIXTURE_BROKER_URL, or start a broker for this run; provide its URL to the workers.
//
// Runs once in Vitest's main process (watch mode included). With FIXTURE_BROKER_URL unset it
// finds or starts the project's warm broker (lib/warm.cjs, keyed by the Vitest root), which
// outlives the run and stops itself once idle; with FIXTURE_BROKER_WARM=0 it starts a private
// broker that the returned teardown stops. The URL reaches the workers through
// `project.provide('fixtureBroker', {url, ...})`, read with `inject('fixtureBroker')` in
// vitest/setup.mjs; members of `test.provide.fixtureBroker` in the Vitest config (default
// fixtures, waitMs, brokerArgs) are passed along with it. The function it returns stops the
// broker it started.
import cjs from '../index.cjs';
import brokerProcess from '../lib/broker-process.cjs';
import warm from '../lib/warm.cjs';

const { connect } = cjs;
const { startBroker } = brokerProcess;

export default async function fixtureBrokerGlobalSetup(project) {
  const configured = (project && project.config && project.config.provide &&
    project.config.provide.fixtureBroker) || {};
  let broker = null;
  let setByUs = null;
  let url = process.env.FIXTURE_BROKER_URL;
  if (url) {
    const client = await connect({ url, client: 'vitest-global-setup' });
    await client.close();
  } else if (warm.warmEnabled()) {
    ({ url } = await warm.ensure({
      projectRoot: (project.config && project.config.root) || process.cwd(),
      args: configured.brokerArgs,
      idleExitMs: configured.idleExitMs,
    }));
    /* For the workers' own connect() calls, as with a private broker. */
    process.env.FIXTURE_BROKER_URL = url;
    setByUs = url;
  } else {
    broker = await startBroker({ args: configured.brokerArgs });
    url = broker.url;
    process.env.FIXTURE_BROKER_URL = url;
  }
  project.provide('fixtureBroker', { ...configured, url });
  return async () => {
    if (setByUs && process.env.FIXTURE_BROKER_URL === setByUs) delete process.env.FIXTURE_BROKER_URL;
    if (!broker) return;
    if (process.env.FIXTURE_BROKER_URL === broker.url) delete process.env.FIXTURE_BROKER_URL;
    await broker.stop();
  };
}
