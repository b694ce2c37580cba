/**
 * pragma-short.test.cjs: a file whose @fixtures pragma uses the short name:kind form, serving HTTP with express.
 *
 * @fixtures web:port, metrics:port
 */
'use strict';

const http = require('node:http');
const express = require('express');
const request = require('supertest');
const { listen, close, record } = require('./shared.cjs');

let server;

beforeAll(async () => {
  record(__filename);
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
