// options-default.test.cjs: a file with no pragma gets the fixtures of testEnvironmentOptions (one port, "http").
'use strict';

const { connect } = require('fixture-broker');
const { listen, close, ask, echoServer, record } = require('./shared.cjs');

/* The environment leased before this module ran, so the values are here at load time. */
const { http } = globalThis.fixtures;
let server;

beforeAll(async () => {
  record(__filename);
  server = await listen(echoServer('default'), http.port, http.host);
});

afterAll(() => close(server));

test('the fixture is a plain object with the broker\'s host and port', () => {
  expect(Object.keys(globalThis.fixtures)).toEqual(['http']);
  expect(http).toEqual({ kind: 'port', host: '127.0.0.1', port: expect.any(Number) });
  expect(Object.getPrototypeOf(http)).toBe(Object.prototype);
});

test('the port comes from the broker\'s pool', async () => {
  const client = await connect({ client: 'jest-suite-limits' });
  try {
    expect(http.port).toBeGreaterThanOrEqual(client.limits.ports.first);
    expect(http.port).toBeLessThanOrEqual(client.limits.ports.last);
  } finally {
    await client.close();
  }
});

test('this file\'s server answers on its leased port', async () => {
  await expect(ask(http.port, http.host, 'ping')).resolves.toBe('default:ping');
});
