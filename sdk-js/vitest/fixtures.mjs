// fixtures.mjs: worker-scoped fixtures for Vitest's test.extend: `test.extend(brokerFixtures({ db: { kind: 'postgres' } }))`.
//
// brokerFixtures(specs, { waitMs, ttlMs }) returns the fixtures object for test.extend:
// `fixtureLease`, one lease per worker with every fixture in specs (leased the first time a
// test of the worker asks for one, released when the worker ends), and one fixture per name
// (`db`, `http`, ...) whose value is that fixture's fields. All have { scope: 'worker' }
// (Vitest 3.2 and later). The broker's URL comes from the global setup
// (fixture-broker/vitest/global-setup, through inject) or $FIXTURE_BROKER_URL; the connection
// is the worker's one, shared with fixture-broker/vitest/setup. No setup file is needed.
import { inject } from 'vitest';
import cjs from '../index.cjs';

const { connect } = cjs;
const CLIENT = Symbol.for('fixture-broker.vitest.client');
const DEFAULT_WAIT_MS = 60000;

function brokerUrl() {
  let provided;
  try {
    provided = inject('fixtureBroker');
  } catch {
    provided = undefined;
  }
  return (provided && provided.url) || process.env.FIXTURE_BROKER_URL;
}

async function workerClient() {
  const url = brokerUrl();
  const held = globalThis[CLIENT];
  if (held && held.url === url) return held.promise;
  const promise = connect({ url, client: 'vitest', labels: { runner: 'vitest', pool: process.env.VITEST_POOL_ID } });
  globalThis[CLIENT] = { url, promise };
  return promise;
}

export function brokerFixtures(specs, { waitMs = DEFAULT_WAIT_MS, ttlMs } = {}) {
  const out = {
    fixtureLease: [async ({}, use) => { // eslint-disable-line no-empty-pattern
      const client = await workerClient();
      const lease = await client.acquire({ fixtures: specs, waitMs, ttlMs,
        labels: { runner: 'vitest', pool: process.env.VITEST_POOL_ID, scope: 'worker' } });
      try {
        await use(lease);
      } finally {
        await lease.release();
      }
    }, { scope: 'worker' }],
  };
  for (const name of Object.keys(specs)) {
    out[name] = [async ({ fixtureLease }, use) => use(fixtureLease.fixtures[name]), { scope: 'worker' }];
  }
  return out;
}

export default brokerFixtures;
