/**
 * pragma-short.test.mjs: a file whose @fixtures pragma uses the short name:kind form, serving HTTP with express.
 *
 * @fixtures web:port, metrics:port
 */
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import express from 'express';
import request from 'supertest';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { connect } from 'fixture-broker';
import { close, listen, record } from './shared.mjs';

let server;

beforeAll(async () => {
  record(fileURLToPath(import.meta.url));
  const { web } = globalThis.fixtures;
  const app = express();
  app.get('/port', (req, res) => res.json({ port: web.port }));
  server = await listen(http.createServer(app), web.port, web.host);
});

afterAll(() => close(server));

test('the short form leases each named port', () => {
  const { web, metrics, http: main } = globalThis.fixtures;
  expect(web.kind).toBe('port');
  expect(metrics.kind).toBe('port');
  expect(new Set([web.port, metrics.port, main.port]).size).toBe(3);
});

test('express serves on the leased port', async () => {
  const { web } = globalThis.fixtures;
  const res = await request(`http://${web.host}:${web.port}`).get('/port');
  expect(res.status).toBe(200);
  expect(res.body).toEqual({ port: web.port });
});

test('another session gets LEASE_NOT_OWNED for this file\'s lease', async () => {
  const other = await connect({ url: globalThis.fixtureBroker.url, client: 'vitest-suite-other' });
  try {
    await expect(other.release(globalThis.fixtureBroker.lease))
      .rejects.toMatchObject({ errorName: 'LEASE_NOT_OWNED', code: 1004 });
  } finally {
    await other.close();
  }
});
