// unref.test.mjs: an idle client never keeps Node alive, and a call in flight does (child scripts against the real broker).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { before, test } from 'node:test';
import { connect } from '../index.mjs';
import { startBroker, until } from './helpers/broker.mjs';

const SCRIPT = fileURLToPath(new URL('./scripts/lease-and-leave.mjs', import.meta.url));

let broker;

before(async () => {
  broker = await startBroker(['--ports', '28040-28041', '--port-quarantine-ms', '0', '--grace-ms', '1000']);
});

/* Runs the child script and resolves to {code, signal, stdout, stderr} when it exits. */
function run(mode) {
  const child = spawn(process.execPath, [SCRIPT, mode], {
    env: { ...process.env, FIXTURE_BROKER_URL: broker.url },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => { stdout += d; });
  child.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, exited };
}

test('a script that acquires and releases exits on its own with its client still open', { timeout: 20000 }, async () => {
  const { code, signal, stdout, stderr } = await run('release').exited;
  assert.equal(signal, null, stderr);
  assert.equal(code, 0, stderr);
  const out = JSON.parse(stdout);
  assert.match(out.lease, /^l-/);
  assert.ok(out.port >= 28040 && out.port <= 28041);
});

test('a script that keeps its lease exits too, and the broker reclaims the lease', { timeout: 20000 }, async () => {
  const { code, stdout, stderr } = await run('keep').exited;
  assert.equal(code, 0, stderr);
  assert.match(JSON.parse(stdout).lease, /^l-/);
  const c = await connect({ url: broker.url });
  try {
    /* The dropped session keeps it for the grace period, then the broker releases it. */
    await until(async () => (await c.status()).leases === 0, 100);
  } finally {
    await c.close();
  }
});

test('a waiting acquire keeps the script alive until it is granted', { timeout: 20000 }, async () => {
  const holder = await connect({ url: broker.url });
  try {
    const a = await holder.acquire({ fixtures: { a: 'port' } });
    const b = await holder.acquire({ fixtures: { b: 'port' } });
    const { exited } = run('wait');
    let done = false;
    exited.then(() => { done = true; });
    await until(async () => (await holder.status()).waiting === 1);
    assert.equal(done, false, 'the script exited while its acquire was waiting');
    await b.release();
    const { code, stdout, stderr } = await exited;
    assert.equal(code, 0, stderr);
    assert.equal(JSON.parse(stdout).port, b.fixtures.b.port);
    await a.release();
  } finally {
    await holder.close();
  }
});
