// example-suite.mjs: wall time of the express-pg example suite in band and with workers, against the same suite written without the broker, in one run.
//
// Run from `make bench` (target js-example-bench) or `node bench/example-suite.mjs` in sdk-js.
// One broker, started here with the example's fixture-broker.json, serves every Jest run
// (FIXTURE_BROKER_URL is set for them, so their global setups only check it), and a warm-up
// lease builds the "app" template before anything is timed. The "before" suite runs in band
// on one shared database: an empty database leased here for the whole benchmark, which its
// global setup migrates and each of its files truncates and seeds again. Its API port is
// API_PORT_BASE + JEST_WORKER_ID (1 in band) with the base set so that this is a port leased
// here: two benchmarks on one host would otherwise both start the "before" API on 8001.
//
// Timed, in rounds that alternate the modes (median per mode):
//   - the example suite with --runInBand;
//   - with Jest's default workers (availableParallelism - 1; Jest may still decide to run in
//     band when cached timings say every file is fast);
//   - with --maxWorkers=4, the timing cache removed first so that Jest really starts workers;
//   - the "before" suite with --runInBand;
//   - as a user runs it, with no broker given (FIXTURE_BROKER_URL unset), through the
//     project's warm broker (lib/warm.cjs): "cold", a first run in a fresh warm directory
//     that starts the broker and its PostgreSQL cluster (initdb) and builds the template,
//     in band and with 4 workers; and "warm", a later run that reuses the broker, its
//     cluster and template, in band and with 4 workers. The warm broker is started by an
//     untimed run in round 0 and stopped at the end; each cold one is stopped after its run.
// Every run must pass; a failing run is reported and makes the exit status non-zero.
// EXAMPLE_BENCH_ROUNDS (default 3) sets the number of rounds.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { connect } from '../index.mjs';

const require = createRequire(import.meta.url);
const { startBroker } = require('../lib/broker-process.cjs');
const warmBrokers = require('../lib/warm.cjs');

const SDK = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const EXAMPLE = path.join(SDK, 'examples', 'express-pg');
/* The example's own Jest (30), from its lock file. */
const JEST = path.join(EXAMPLE, 'node_modules', 'jest', 'bin', 'jest.js');
const ROUNDS = Number(process.env.EXAMPLE_BENCH_ROUNDS) || 3;
const CPUS = typeof os.availableParallelism === 'function' ? os.availableParallelism()
  : os.cpus().length;
const DEFAULT_WORKERS = Math.max(CPUS - 1, 1);

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/* Removes Jest's per-file timings (perf-cache-*) but keeps its transform cache. */
function forgetTimings(cacheDir) {
  for (const name of fs.existsSync(cacheDir) ? fs.readdirSync(cacheDir) : []) {
    if (name.startsWith('perf-cache-')) fs.rmSync(path.join(cacheDir, name), { force: true });
  }
}

function runJest(args, env) {
  return new Promise((resolve) => {
    const started = process.hrtime.bigint();
    const child = spawn(process.execPath, [JEST, '--ci', '--silent', ...args], {
      cwd: EXAMPLE,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d) => { output += d; });
    child.stderr.on('data', (d) => { output += d; });
    child.on('exit', (code, signal) => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const tests = /Tests:\s+(.*)/.exec(output);
      resolve({ seconds, ok: code === 0, code, signal, summary: tests ? tests[1].trim() : '', output });
    });
  });
}

async function main() {
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fxb-example-bench-'));
  /* As root the broker runs PostgreSQL as another user, who must reach the warm directories. */
  fs.chmodSync(workDir, 0o755);
  let coldCount = 0;
  const warmDir = path.join(workDir, 'warm');
  const caches = {};
  const cacheFor = (mode) => {
    if (!caches[mode]) caches[mode] = path.join(workDir, `jest-cache-${mode}`);
    return caches[mode];
  };
  /* The configuration's relative paths (the commands, the template's inputs) are the
   * broker's working directory's: the example's, as when Jest starts it there. */
  process.chdir(EXAMPLE);
  const broker = await startBroker({
    args: ['--config', path.join(EXAMPLE, 'fixture-broker.json')],
  });
  let client;
  let failed = false;
  try {
    client = await connect({ url: broker.url, client: 'example-bench' });
    /* Warm-up: builds the "app" template and starts one server, untimed. */
    const t0 = process.hrtime.bigint();
    const warm = await client.acquire({
      fixtures: { api: { kind: 'server', template: 'api' } }, waitMs: 120000, timeoutMs: 300000,
    });
    const warmSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
    await warm.release();
    /* The "before" suite's one shared database (empty, migrated by its global setup) and the
     * port its API gets in band. */
    const shared = await client.acquire({
      fixtures: { shared: { kind: 'postgres' }, beforeApi: { kind: 'port' } }, waitMs: 60000,
    });
    const env = {
      ...process.env,
      FIXTURE_BROKER_URL: broker.url,
      DATABASE_URL: shared.fixtures.shared.url,
      API_PORT_BASE: String(shared.fixtures.beforeApi.port - 1),
    };

    /* The runs that find their broker as a user's do: no URL, the project's warm broker, a
     * port range clear of the benchmark's own broker, no --state-dir (the warm one's). */
    const userEnv = (dir) => {
      const e = { ...env, FIXTURE_BROKER_WARM: '1', FIXTURE_BROKER_WARM_DIR: dir,
        FIXTURE_BROKER_ARGS: '--ports 28700-28999' };
      delete e.FIXTURE_BROKER_URL;
      return e;
    };
    const coldEnv = () => userEnv(path.join(workDir, `cold-${++coldCount}`));
    const afterCold = async (e) => {
      await warmBrokers.stop(warmBrokers.warmDir(EXAMPLE, e));
      fs.rmSync(e.FIXTURE_BROKER_WARM_DIR, { recursive: true, force: true });
    };
    const modes = [
      { key: 'cold', suite: 'npx jest, cold', label: '--runInBand', workers: '1', env: coldEnv,
        after: afterCold, args: ['--config', 'jest.config.js', '--runInBand'] },
      { key: 'cold4', suite: 'npx jest, cold', label: '--maxWorkers=4', workers: '4', fresh: true,
        env: coldEnv, after: afterCold, args: ['--config', 'jest.config.js', '--maxWorkers=4'] },
      { key: 'warm', suite: 'npx jest, warm', label: '--runInBand', workers: '1',
        env: () => userEnv(warmDir), args: ['--config', 'jest.config.js', '--runInBand'] },
      { key: 'warm4', suite: 'npx jest, warm', label: '--maxWorkers=4', workers: '4', fresh: true,
        env: () => userEnv(warmDir), args: ['--config', 'jest.config.js', '--maxWorkers=4'] },
      { key: 'inband', suite: 'with the broker', label: '--runInBand', workers: '1',
        args: ['--config', 'jest.config.js', '--runInBand'] },
      { key: 'default', suite: 'with the broker', label: `Jest's default (${DEFAULT_WORKERS})`,
        workers: String(DEFAULT_WORKERS),
        args: ['--config', 'jest.config.js'] },
      { key: 'four', suite: 'with the broker', label: '--maxWorkers=4', workers: '4', fresh: true,
        args: ['--config', 'jest.config.js', '--maxWorkers=4'] },
      { key: 'before', suite: 'before: shared db', label: '--runInBand', workers: '1',
        args: ['--config', 'before/jest.config.js', '--runInBand'] },
    ];
    const times = Object.fromEntries(modes.map((m) => [m.key, []]));
    const summaries = {};
    /* Round 0 fills each mode's transform cache and is not counted. */
    for (let round = 0; round <= ROUNDS; round++) {
      for (const mode of modes) {
        const cache = cacheFor(mode.key);
        if (mode.fresh) forgetTimings(cache);
        const runEnv = mode.env ? mode.env() : env;
        const r = await runJest([...mode.args, '--cacheDirectory', cache], runEnv);
        if (mode.after) await mode.after(runEnv);
        if (!r.ok) {
          failed = true;
          const log = path.join(os.tmpdir(), `example-suite-${mode.key}-${process.pid}-${round}.log`);
          fs.writeFileSync(log, r.output);
          console.error(`${mode.suite} ${mode.label}: jest exited with ${r.signal || r.code} ` +
            `(its whole output: ${log}); the end of it:\n` +
            r.output.split('\n').slice(-40).join('\n'));
        }
        summaries[mode.key] = r.summary;
        if (round > 0) times[mode.key].push(r.seconds);
      }
    }
    await shared.release();

    const files = fs.readdirSync(path.join(EXAMPLE, 'test')).filter((f) => f.endsWith('.test.js'));
    const before = median(times.before);
    console.log('Example suite: sdk-js/examples/express-pg against its "before" version');
    console.log(`  ${files.length} test files (${summaries.inband || 'no summary'}); ` +
      `median of ${ROUNDS} round(s) after one untimed round; ${CPUS} CPU(s)`);
    console.log(`  warm-up lease (template build and one server, untimed): ${warmSeconds.toFixed(2)} s`);
    console.log('  "with the broker": one broker, started here, for all those runs; "npx jest": no broker');
    console.log('  given, the run finds the warm one (warm) or starts it and its PostgreSQL (cold);');
    console.log('  the "before" suite runs on one shared leased database');
    console.log('');
    const header = ['suite', 'mode', 'workers', 'wall s', 'min s', 'max s', 'vs before'];
    const rows = modes.map((m) => {
      const t = times[m.key];
      return [m.suite, m.label, m.workers, median(t).toFixed(2), Math.min(...t).toFixed(2),
        Math.max(...t).toFixed(2), `${(median(t) / before).toFixed(2)}x`];
    });
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
    const line = (cells) => `  ${cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')}`;
    console.log(line(header));
    for (const r of rows) console.log(line(r));
    console.log('');
    console.log('  "vs before" is wall time over the before suite\'s in band (lower is faster).');
    if (DEFAULT_WORKERS === 1) {
      console.log(`  With ${CPUS} CPU(s) Jest's default is one worker, which it runs in band.`);
    }
  } finally {
    if (client) await client.close();
    await warmBrokers.stop(warmBrokers.warmDir(EXAMPLE, { FIXTURE_BROKER_WARM_DIR: warmDir })).catch(() => {});
    await broker.stop();
    fs.rmSync(workDir, { recursive: true, force: true });
  }
  if (failed) process.exitCode = 1;
}

main().catch((err) => {
  console.error(`example-suite: ${err.stack || err}`);
  process.exitCode = 1;
});
