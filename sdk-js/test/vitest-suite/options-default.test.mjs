// options-default.test.mjs: a file with no pragma gets the fixtures the config provides (one port, "http").
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { connect } from 'fixture-broker';
import { ask, close, echoServer, listen, record } from './shared.mjs';

let server;

beforeAll(async () => {
  record(fileURLToPath(import.meta.url));
  const { http } = globalThis.fixtures;
  server = await listen(echoServer('default'), http.port, http.host);
});

afterAll(() => close(server));

test('the fixture is a plain object with the broker\'s host and port', () => {
  expect(Object.keys(globalThis.fixtures)).toEqual(['http']);
  expect(globalThis.fixtures.http).toEqual({ kind: 'port', host: '127.0.0.1', port: expect.any(Number) });
});

test('the port comes from the broker\'s pool', async () => {
  const client = await connect({ url: globalThis.fixtureBroker.url, client: 'vitest-suite-limits' });
  try {
    const { port } = globalThis.fixtures.http;
    expect(port).toBeGreaterThanOrEqual(client.limits.ports.first);
    expect(port).toBeLessThanOrEqual(client.limits.ports.last);
  } finally {
    await client.close();
  }
});

test('this file\'s server answers on its leased port', async () => {
  const { http } = globalThis.fixtures;
  await expect(ask(http.port, http.host, 'ping')).resolves.toBe('default:ping');
});
