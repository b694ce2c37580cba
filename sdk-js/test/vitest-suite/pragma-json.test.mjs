/**
 * pragma-json.test.mjs: a file whose @fixtures pragma (JSON, over two lines) adds two ports to the default one.
 *
 * @fixtures {"api": {"kind": "port"},
 *            "admin": {"kind": "port"}}
 */
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { ask, close, echoServer, listen, record } from './shared.mjs';

const servers = [];

beforeAll(async () => {
  record(fileURLToPath(import.meta.url));
  for (const name of ['http', 'api', 'admin']) {
    const { host, port } = globalThis.fixtures[name];
    servers.push(await listen(echoServer(name), port, host));
  }
});

afterAll(() => Promise.all(servers.map(close)));

test('the pragma\'s fixtures come with the default one, each on its own port', () => {
  const { http, api, admin } = globalThis.fixtures;
  expect(Object.keys(globalThis.fixtures).sort()).toEqual(['admin', 'api', 'http']);
  expect(new Set([http.port, api.port, admin.port]).size).toBe(3);
});

test('each server answers on its own port', async () => {
  for (const name of ['http', 'api', 'admin']) {
    const { host, port } = globalThis.fixtures[name];
    await expect(ask(port, host, 'who')).resolves.toBe(`${name}:who`);
  }
});

test('a port this file listens on cannot be bound again', async () => {
  const { host, port } = globalThis.fixtures.api;
  await expect(listen(net.createServer(), port, host)).rejects.toMatchObject({ code: 'EADDRINUSE' });
});
