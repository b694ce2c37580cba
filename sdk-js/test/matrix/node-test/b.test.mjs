// b.test.mjs: node --test: a client per file, FIXTURE_BROKER_URL from `fixture-broker run`.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { connect } from 'fixture-broker';
import checkFixtures from '../shared/check.cjs';

let client;
let lease;
before(async () => {
  client = await connect({ client: 'node-test' });
  lease = await client.acquire({ fixtures: { http: 'port', db: { kind: 'postgres' } }, waitMs: 30000 });
});
after(() => client.close());

test('b: its fixtures', async () => {
  assert.deepEqual(await checkFixtures(lease.fixtures, 'b'), ['b']);
});
