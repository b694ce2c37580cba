// worker-connection.test.cjs: the file's lease belongs to its worker's session; another session cannot release it.
'use strict';

const { connect } = require('fixture-broker');
const { listen, close, echoServer, record } = require('./shared.cjs');

let server;

beforeAll(async () => {
  record(__filename);
  const { http } = globalThis.fixtures;
  server = await listen(echoServer('conn'), http.port, http.host);
});

afterAll(() => close(server));

test('another session gets LEASE_NOT_OWNED for this file\'s lease', async () => {
  const other = await connect({ client: 'jest-suite-other' });
  try {
    await expect(other.release(globalThis.fixtureBroker.lease))
      .rejects.toMatchObject({ errorName: 'LEASE_NOT_OWNED', code: 1004 });
    expect(await other.list()).toEqual([]);
  } finally {
    await other.close();
  }
});
