// broker-process.test.mjs: finding and starting the broker binary, and never leaving one behind.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import { connect } from '../index.mjs';
import brokerProcess from '../lib/broker-process.cjs';
import { until } from './helpers/broker.mjs';

const { findBrokerBinary, startBroker } = brokerProcess;
const SCRIPT = fileURLToPath(new URL('./scripts/start-and-hang.mjs', import.meta.url));

test('FIXTURE_BROKER_BIN that is not an executable is an error that names it', () => {
  const saved = process.env.FIXTURE_BROKER_BIN;
  process.env.FIXTURE_BROKER_BIN = '/nonexistent/fixture-broker';
  try {
    assert.throws(() => findBrokerBinary(), /\/nonexistent\/fixture-broker.*FIXTURE_BROKER_BIN/);
  } finally {
    if (saved === undefined) delete process.env.FIXTURE_BROKER_BIN;
    else process.env.FIXTURE_BROKER_BIN = saved;
  }
});

test('without FIXTURE_BROKER_BIN the binary is found on PATH', () => {
  const saved = { bin: process.env.FIXTURE_BROKER_BIN, path: process.env.PATH };
  const real = findBrokerBinary();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fxb-js-path-'));
  fs.symlinkSync(real, path.join(dir, 'fixture-broker'));
  try {
    delete process.env.FIXTURE_BROKER_BIN;
    process.env.PATH = `${dir}${path.delimiter}${saved.path}`;
    assert.equal(findBrokerBinary(), path.join(dir, 'fixture-broker'));
  } finally {
    process.env.PATH = saved.path;
    if (saved.bin !== undefined) process.env.FIXTURE_BROKER_BIN = saved.bin;
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a broker that refuses to start is an error carrying its log', async () => {
  /* A pool inside the kernel's ephemeral range is refused at start-up. */
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fxb-js-range-'));
  const range = path.join(dir, 'ip_local_port_range');
  fs.writeFileSync(range, '28000\t28100\n');
  try {
    await assert.rejects(startBroker({
      args: ['--ports', '28064-28065', '--ephemeral-range-file', range],
      logFile: path.join(dir, 'broker.log'),
    }), (err) => {
      assert.match(err.message, /exited with 1 before it listened/);
      assert.match(err.message, /ephemeral/);
      return true;
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('stop() stops the broker: it exits cleanly and no longer answers', async () => {
  const broker = await startBroker({ args: ['--ports', '28060-28061'] });
  const c = await connect({ url: broker.url });
  await c.close();
  const result = await broker.stop();
  assert.deepEqual({ code: result.code, signal: result.signal }, { code: 0, signal: null });
  await assert.rejects(connect({ url: broker.url }), { errorName: 'CONNECT_FAILED' });
});

test('a broker outlives no process that started it, even one killed with SIGKILL', { timeout: 30000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fxb-js-orphan-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const child = spawn(process.execPath, [SCRIPT, '--ports', '28062-28063'], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, FIXTURE_BROKER_LOG: path.join(dir, 'broker.log') },
  });
  let out = '';
  child.stdout.setEncoding('utf8');
  const url = await new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d;
      const m = /^(ws:\/\/\S+)$/m.exec(out);
      if (m) resolve(m[1]);
    });
    child.on('exit', (code) => reject(new Error(`the script exited with ${code}: ${out}`)));
  });
  const c = await connect({ url });
  await c.close();
  child.kill('SIGKILL');
  await until(() => connect({ url }).then((client) => client.close().then(() => false),
    (err) => err.errorName === 'CONNECT_FAILED'), 50);
});

test('the Jest preset\'s broker forwards to FIXTURE_BROKER_UPSTREAM from the environment', { timeout: 30000 }, async () => {
  const require = createRequire(import.meta.url);
  const globalSetup = require('../jest/global-setup.cjs');
  const globalTeardown = require('../jest/global-teardown.cjs');
  const shared = await startBroker({ args: ['--ports', '28066-28067'] });
  const saved = { ...process.env };
  after(() => shared.stop());
  delete process.env.FIXTURE_BROKER_URL;
  process.env.FIXTURE_BROKER_WARM = '0';
  process.env.FIXTURE_BROKER_UPSTREAM = shared.url;
  process.env.FIXTURE_BROKER_ARGS = '--ports 28068-28069';
  let c = null;
  try {
    await globalSetup({ rootDir: process.cwd() }, { testEnvironmentOptions: {} });
    assert.ok(process.env.FIXTURE_BROKER_URL, 'the global setup set no FIXTURE_BROKER_URL');
    assert.notEqual(process.env.FIXTURE_BROKER_URL, shared.url);
    c = await connect({ url: process.env.FIXTURE_BROKER_URL });
    let upstream = null;
    for (const end = Date.now() + 10000; Date.now() < end; await new Promise((r) => setTimeout(r, 50))) {
      upstream = (await c.status()).upstream;
      if (upstream && upstream.state === 'up') break;
    }
    assert.equal(upstream && upstream.state, 'up', `the preset's broker has no upstream session: ${JSON.stringify(upstream)}`);
    assert.equal(upstream.url, shared.url);
  } finally {
    if (c) await c.close();
    await globalTeardown();
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
});
