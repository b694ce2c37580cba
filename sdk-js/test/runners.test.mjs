// runners.test.mjs: the Jest and Vitest suites against a broker that is already running ($FIXTURE_BROKER_URL), which they must leave running.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { before, test } from 'node:test';
import { connect } from '../index.mjs';
import { startBroker, until } from './helpers/broker.mjs';

const PKG = fileURLToPath(new URL('..', import.meta.url));

let broker;

before(async () => {
  broker = await startBroker(['--ports', '28300-28349']);
});

function run(bin, args, { url = broker.url, env = {} } = {}) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [`node_modules/.bin/${bin}`, ...args], {
      cwd: PKG,
      env: { ...process.env, FIXTURE_BROKER_URL: url, FIXTURE_BROKER_BIN: '/nonexistent', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d) => { output += d; });
    child.stderr.on('data', (d) => { output += d; });
    child.on('exit', (code) => resolve({ code, output }));
  });
}

async function brokerState() {
  const c = await connect({ url: broker.url, client: 'runners-check' });
  try {
    const s = await c.status();
    return { leases: s.leases, ports: s.ports.first };
  } finally {
    await c.close();
  }
}

test('the Jest suite uses the running broker and leaves it running, with nothing leased', { timeout: 120000 }, async () => {
  const { code, output } = await run('jest', ['--config', 'test/jest-suite/jest.config.cjs', '--maxWorkers=2']);
  assert.equal(code, 0, output);
  assert.match(output, /Tests:\s+\d+ passed/);
  assert.deepEqual(await brokerState(), { leases: 0, ports: 28300 });
});

test('the Vitest suite uses the running broker and leaves it running, with nothing leased', { timeout: 120000 }, async () => {
  const { code, output } = await run('vitest', ['run', '--config', 'test/vitest-suite/vitest.config.mjs']);
  assert.equal(code, 0, output);
  assert.match(output, /Tests\s+.*\d+ passed/);
  assert.deepEqual(await brokerState(), { leases: 0, ports: 28300 });
});

test('a Jest worker killed mid-file: the broker reclaims its lease after the grace period', { timeout: 120000 }, async () => {
  const graceful = await startBroker(['--ports', '28350-28359', '--grace-ms', '200']);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fxb-js-kill-'));
  const record = path.join(dir, 'record.json');
  try {
    const { code, output } = await run('jest', ['--config', 'test/jest-kill/jest.config.cjs'],
      { url: graceful.url, env: { FXB_KILL_RECORD: record } });
    assert.notEqual(code, 0, output);
    const { lease, port } = JSON.parse(fs.readFileSync(record, 'utf8'));
    assert.match(lease, /^l-/);
    assert.ok(port >= 28350 && port <= 28359);
    const c = await connect({ url: graceful.url, client: 'kill-check' });
    try {
      await until(async () => {
        const s = await c.status();
        return s.leases === 0 && s.sessions_in_grace === 0;
      });
      assert.deepEqual(await c.list(), []);
    } finally {
      await c.close();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
