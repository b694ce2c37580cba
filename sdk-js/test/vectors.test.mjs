// vectors.test.mjs: walks protocol/vectors/*.json against the real broker, raw over WebSocket and through the client.
//
// The broker is the one the vectors assume (protocol/vectors/README.md): a pool of ten ports,
// 15000-15009, no quarantine, every other setting at its default. If one of those ports is
// taken on this machine, another ten outside the ephemeral range are used and the expected
// `first`/`last` values are adjusted to them.
//
// Each file runs twice, each time on a fresh session: once raw (every case's text sent as
// one WebSocket message, its replies compared by the vectors' matching rules), and once
// through client.call() for the cases that are plain calls (the result, or the error's code,
// message and data, compared the same way). No case waits, so "no reply" is checked without a
// timer: after each case a marker call follows, and whatever arrives before the marker's reply
// is the case's reply.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { connect, FixtureBrokerError } from '../index.mjs';
import { startBroker } from './helpers/broker.mjs';
import { match } from './helpers/match.mjs';

const VECTORS = fileURLToPath(new URL('../../protocol/vectors/', import.meta.url));
const FILES = fs.readdirSync(VECTORS).filter((f) => f.endsWith('.json')).sort();
const ASSUMED = { first: 15000, last: 15009 };
const FALLBACKS = [28070, 28080, 28090, 29000, 29010];

function canBind(port) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen({ port, host: '127.0.0.1', exclusive: true }, () => s.close(() => resolve(true)));
  });
}

async function freeRange() {
  for (const first of [ASSUMED.first, ...FALLBACKS]) {
    const checks = await Promise.all(Array.from({ length: 10 }, (_, i) => canBind(first + i)));
    if (checks.every(Boolean)) return { first, last: first + 9 };
  }
  return ASSUMED;
}

/* The expected value with the pool's first and last ports replaced by the ones in use. */
function adjust(expected, range) {
  if (Array.isArray(expected)) return expected.map((v) => adjust(v, range));
  if (expected && typeof expected === 'object') {
    const out = {};
    for (const [k, v] of Object.entries(expected)) {
      if (k === 'first' && v === ASSUMED.first) out[k] = range.first;
      else if (k === 'last' && v === ASSUMED.last) out[k] = range.last;
      else out[k] = adjust(v, range);
    }
    return out;
  }
  return expected;
}

/** A raw WebSocket session that reads its messages in order. */
async function rawSession(url) {
  const ws = new WebSocket(url, 'fixture-broker.v1');
  const queue = [];
  const waiters = [];
  ws.on('message', (data) => {
    const text = data.toString();
    if (waiters.length) waiters.shift()(text);
    else queue.push(text);
  });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  let marker = 0;
  return {
    /** Sends `text`, then a marker call; resolves to the replies that came before the marker's. */
    async exchange(text) {
      const id = `vectors-marker-${++marker}`;
      ws.send(text);
      ws.send(JSON.stringify({ jsonrpc: '2.0', id, method: 'broker.status' }));
      const replies = [];
      for (;;) {
        const raw = queue.length ? queue.shift() : await new Promise((resolve) => waiters.push(resolve));
        const msg = JSON.parse(raw);
        if (msg && !Array.isArray(msg) && msg.id === id) return replies;
        replies.push(msg);
      }
    },
    close() {
      return new Promise((resolve) => {
        ws.once('close', resolve);
        ws.close(1000);
      });
    },
  };
}

/* Cases that client.call() can send as they are: one call by name, with an id. */
function isPlainCall(c) {
  const r = c.request;
  if (!r || typeof r !== 'object' || Array.isArray(r) || 'request_text' in c) return false;
  if (Object.keys(r).some((k) => !['jsonrpc', 'id', 'method', 'params'].includes(k))) return false;
  if (r.jsonrpc !== '2.0' || typeof r.method !== 'string' || !Number.isInteger(r.id)) return false;
  if ('params' in r && (!r.params || typeof r.params !== 'object' || Array.isArray(r.params))) return false;
  return c.response !== null && typeof c.response === 'object';
}

describe('the matching rules', () => {
  test('"*" matches any present value, null included, but not a missing one', () => {
    assert.equal(match('*', null), null);
    assert.equal(match({ a: '*' }, { a: 0 }), null);
    assert.notEqual(match({ a: '*' }, {}), null);
  });

  test('objects need exactly the expected keys unless "*": "*" allows more', () => {
    assert.notEqual(match({ a: 1 }, { a: 1, b: 2 }), null);
    assert.equal(match({ a: 1, '*': '*' }, { a: 1, b: 2 }), null);
    assert.notEqual(match({ a: 1, '*': '*' }, { b: 2 }), null);
  });

  test('arrays match element by element; scalars by value and JSON type', () => {
    assert.notEqual(match([1, 2], [2, 1]), null);
    assert.notEqual(match([1], [1, 1]), null);
    assert.notEqual(match(1, true), null);
    assert.notEqual(match('1', 1), null);
    assert.notEqual(match(null, {}), null);
    assert.equal(match([{ a: [1, '*'] }], [{ a: [1, 'x'] }]), null);
  });
});

let broker;
let range;

before(async () => {
  range = await freeRange();
  broker = await startBroker(['--ports', `${range.first}-${range.last}`, '--port-quarantine-ms', '0']);
});

for (const file of FILES) {
  const doc = JSON.parse(fs.readFileSync(path.join(VECTORS, file), 'utf8'));

  describe(`${file} (raw)`, () => {
    let session;
    before(async () => {
      session = await rawSession(broker.url);
    });

    for (const c of doc.cases) {
      test(c.name, async () => {
        const text = 'request_text' in c ? c.request_text : JSON.stringify(c.request);
        const replies = await session.exchange(text);
        if (c.response === null) {
          assert.deepEqual(replies, [], 'a reply came where none must');
          return;
        }
        assert.equal(replies.length, 1, `expected one reply, got ${JSON.stringify(replies)}`);
        const mismatch = match(adjust(c.response, range), replies[0]);
        assert.equal(mismatch, null, `${mismatch}\nreply: ${JSON.stringify(replies[0])}`);
      });
    }

    test('(the session gives back what it leased)', async () => {
      const [list] = await session.exchange(JSON.stringify({ jsonrpc: '2.0', id: 'list', method: 'lease.list' }));
      for (const l of list.result.leases) {
        const [r] = await session.exchange(JSON.stringify({
          jsonrpc: '2.0', id: 'release', method: 'lease.release', params: { lease: l.lease },
        }));
        assert.equal(r.result.released, true);
      }
      await session.close();
    });
  });

  describe(`${file} (client.call)`, () => {
    let client;
    before(async () => {
      client = await connect({ url: broker.url, client: 'vectors' });
    });

    for (const c of doc.cases.filter(isPlainCall)) {
      test(c.name, async () => {
        const expected = adjust(c.response, range);
        let outcome;
        try {
          outcome = { result: await client.call(c.request.method, c.request.params) };
        } catch (err) {
          if (!(err instanceof FixtureBrokerError) || !err.fromBroker) throw err;
          outcome = { error: { code: err.code, message: err.message, data: err.data } };
        }
        if ('error' in expected) {
          assert.ok(outcome.error, `expected an error, got ${JSON.stringify(outcome.result)}`);
          const mismatch = match(expected.error, outcome.error);
          assert.equal(mismatch, null, `${mismatch}\nerror: ${JSON.stringify(outcome.error)}`);
          assert.equal(outcome.error.data.name, expected.error.data.name);
        } else {
          assert.ok('result' in outcome, `expected a result, got ${JSON.stringify(outcome.error)}`);
          const mismatch = match(expected.result, outcome.result);
          assert.equal(mismatch, null, `${mismatch}\nresult: ${JSON.stringify(outcome.result)}`);
        }
      });
    }

    test('(close gives back what the session leased)', async () => {
      await client.close();
      const observer = await connect({ url: broker.url, client: 'vectors-observer' });
      try {
        assert.equal((await observer.status()).leases, 0);
      } finally {
        await observer.close();
      }
    });
  });
}
