// usage-cjs.cts: compiles a CommonJS use of fixture-broker against index.d.ts (tsc --noEmit, nothing runs).
import fb = require('fixture-broker');

export async function example(): Promise<string> {
  const client = await fb.connect();
  const lease = await client.acquire({ fixtures: { http: { kind: 'port' } } });
  await client.close({ release: true });
  return lease.id;
}

import setup = require('fixture-broker/jest/global-setup');
import teardown = require('fixture-broker/jest/global-teardown');

export async function wrappedSetup(globalConfig: unknown, projectConfig: unknown): Promise<void> {
  await setup(globalConfig, projectConfig);
}

export async function wrappedTeardown(): Promise<void> {
  await teardown();
}
