// warm.test.mjs: the warm broker: a second run, Vitest and Jest's watch mode reuse it and its PostgreSQL; it stops when idle or told to.
//
// Runs test/warm-suite (one postgres fixture per file, which records the broker's URL and
// pg_postmaster_start_time()) with the real broker, Jest and Vitest, warm brokers turned on
// and their directory in a temporary one.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import warm from '../lib/warm.cjs';
import { connect } from '../index.mjs';
import { until } from './helpers/broker.mjs';

const PKG = fileURLToPath(new URL('..', import.meta.url));
const SUITE = path.join(PKG, 'test', 'warm-suite');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fxb-warm-'));
fs.chmodSync(tmp, 0o755);
const OUT = path.join(tmp, 'out.jsonl');
const TRIGGER = path.join(tmp, 'trigger');
fs.mkdirSync(TRIGGER);
const env = { ...process.env, FIXTURE_BROKER_WARM: '1', FIXTURE_BROKER_WARM_DIR: path.join(tmp, 'warm'),
  FXB_WARM_OUT: OUT, FXB_WARM_TRIGGER: TRIGGER, FIXTURE_BROKER_IDLE_EXIT_MS: '600000' };
delete env.FIXTURE_BROKER_URL;
delete env.FIXTURE_BROKER_ARGS;
const dir = warm.warmDir(SUITE, env);

after(async () => {
  await warm.stop(dir).catch(() => {});
  fs.rmSync(tmp, { recursive: true, force: true });
});

const records = () => (fs.existsSync(OUT) ? fs.readFileSync(OUT, 'utf8').trim().split('\n')
  .filter(Boolean).map((l) => JSON.parse(l)) : []);
const brokerInfo = () => JSON.parse(fs.readFileSync(path.join(dir, 'broker.json'), 'utf8'));
const alive = (pid) => { try { process.kill(pid, 0); return true; } catch { return false; } };

function run(bin, args, extraEnv = {}) {
  const r = spawnSync(process.execPath, [path.join(PKG, 'node_modules', '.bin', bin), ...args], {
    cwd: SUITE, env: { ...env, ...extraEnv }, encoding: 'utf8', timeout: 120000,
  });
  assert.equal(r.status, 0, `${bin} ${args.join(' ')}:\n${r.stdout}\n${r.stderr}`);
  return r;
}

test('a second Jest run, a Vitest run and Jest watch mode reuse the warm broker and its PostgreSQL', async () => {
  run('jest', ['--config', 'jest.config.cjs', '--ci']);
  const first = brokerInfo();
  assert.ok(alive(first.keeper), 'the broker lingers after the run');
  assert.equal(records().length, 1);

  run('jest', ['--config', 'jest.config.cjs', '--ci']);
  run('vitest', ['run', '--config', 'vitest.config.mjs']);
  assert.equal(brokerInfo().keeper, first.keeper);
  const [a, b, c] = records();
  assert.equal(c.runner, 'vitest');
  for (const r of [b, c]) {
    assert.equal(r.url, a.url, 'the same broker');
    assert.equal(r.pgStart, a.pgStart, 'PostgreSQL was not started again');
    assert.ok(r.brokerUptimeMs > a.brokerUptimeMs);
  }

  /* Watch mode: a run at start, another when a watched file changes. */
  const watch = spawn(process.execPath, [path.join(PKG, 'node_modules', '.bin', 'jest'),
    '--config', 'jest.config.cjs', '--watchAll'], { cwd: SUITE, env, stdio: 'ignore' });
  try {
    await until(() => records().length >= 4, 100);
    fs.writeFileSync(path.join(TRIGGER, 'changed.js'), `// ${Date.now()}\n`);
    await until(() => records().length >= 5, 100);
  } finally {
    watch.kill('SIGTERM');
  }
  for (const r of records().slice(3)) {
    assert.equal(r.url, a.url, 'watch mode uses the same broker');
    assert.equal(r.pgStart, a.pgStart, 'and the same PostgreSQL');
  }
  assert.equal(brokerInfo().keeper, first.keeper);
});

test('fixture-broker status and stop: the keeper, the broker and PostgreSQL go, the cluster stays for the next start', async () => {
  const info = brokerInfo();
  const cli = (args) => spawnSync(process.execPath, [path.join(PKG, 'bin', 'fixture-broker.cjs'), ...args],
    { cwd: SUITE, env, encoding: 'utf8' });
  const st = cli(['status']);
  assert.equal(st.status, 0, st.stderr);
  assert.equal(JSON.parse(st.stdout).keeper, info.keeper);
  const stop = cli(['stop']);
  assert.equal(stop.status, 0, stop.stderr);
  assert.match(stop.stdout, /stopped the warm broker/);
  assert.ok(!alive(info.keeper) && !alive(info.broker));
  assert.ok(!fs.existsSync(path.join(dir, 'broker.json')));
  assert.equal(cli(['status']).status, 1);
  assert.deepEqual(fs.readdirSync(path.join(dir, 'state', 'pg')).length, 1, 'one cluster, kept');
});

test('a warm broker stops by itself after idleExitMs without sessions', async () => {
  run('jest', ['--config', 'jest.config.cjs', '--ci'], { FIXTURE_BROKER_IDLE_EXIT_MS: '1500' });
  const info = brokerInfo();
  assert.equal(info.idleExitMs, 1500);
  await until(() => !alive(info.keeper) && !alive(info.broker), 100);
  assert.ok(!fs.existsSync(path.join(dir, 'broker.json')));
  assert.equal(fs.readdirSync(path.join(dir, 'state', 'pg')).length, 1, 'the same cluster again');
  /* The log is this start's alone: it does not grow across starts. */
  const starts = fs.readFileSync(path.join(dir, 'broker.log'), 'utf8').match(/fixture-broker \S+ \(instance/g);
  assert.equal(starts.length, 1);
});

test('two runs that start at once share one warm broker and one PostgreSQL', async () => {
  assert.ok(!fs.existsSync(path.join(dir, 'broker.json')), 'none is running before');
  const before = records().length;
  const start = () => new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(PKG, 'node_modules', '.bin', 'jest'),
      '--config', 'jest.config.cjs', '--ci'], { cwd: SUITE, env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => { err += d; });
    child.on('exit', (code) => resolve({ code, err }));
  });
  const runs = await Promise.all([start(), start()]);
  for (const r of runs) assert.equal(r.code, 0, r.err);
  const [x, y] = records().slice(before);
  assert.equal(x.url, y.url);
  assert.equal(x.pgStart, y.pgStart);
  await warm.stop(dir);
});

test('FIXTURE_BROKER_WARM=0: the run starts a private broker and stops it', async () => {
  const before = records().length;
  run('jest', ['--config', 'jest.config.cjs', '--ci'], { FIXTURE_BROKER_WARM: '0' });
  const [r] = records().slice(before);
  assert.ok(r);
  assert.ok(!fs.existsSync(path.join(dir, 'broker.json')), 'no warm broker');
  await assert.rejects(connect({ url: r.url, connectTimeoutMs: 2000 }),
    (err) => err.errorName === 'CONNECT_FAILED', 'the private broker stopped with the run');
});
