// warm.cjs: one lingering broker per user and project, reused by every run (Jest, Vitest, `fixture-broker run`).
//
// The broker of a project runs under a keeper process (lib/keeper.cjs), detached from the
// run that started it. Its directory, <base>/<key> (base: $FIXTURE_BROKER_WARM_DIR, else
// $XDG_CACHE_HOME/fixture-broker/warm, else ~/.cache/fixture-broker/warm; key: a hash of the
// project's real path), holds:
//   broker.json  what the keeper started: {format, version, bin, args, pgBindir, url, keeper, broker}
//   state/       the broker's --state-dir: its embedded PostgreSQL cluster, reused by each start
//   broker.log   the broker's log, keeper.log the keeper's
//   start.lock   held (O_EXCL, with the pid) by the one run starting a keeper
// A run reuses the broker when broker.json's keeper is alive, its version, binary, flags and
// PostgreSQL directory are this run's, and the broker answers `broker.status` with this
// version; otherwise it starts a keeper (after stopping an incompatible, idle one). The keeper
// stops the broker once it has had no session but its own, no lease and no waiter for
// idleExitMs (default 10 minutes), and on SIGTERM (`fixture-broker stop`). Nothing else is
// written, so nothing accumulates across runs. FIXTURE_BROKER_WARM=0 turns this off: each
// run then starts and stops a private broker, as before.
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { findBrokerBinary, brokerEnv, splitArgs } = require('./broker-process.cjs');
const { connect } = require('./client.cjs');

const VERSION = require('../package.json').version;
const FORMAT = 1;
const DEFAULT_IDLE_EXIT_MS = 10 * 60 * 1000;
const START_TIMEOUT_MS = 120000;
const KEEPER = path.join(__dirname, 'keeper.cjs');

/** False when $FIXTURE_BROKER_WARM turns warm brokers off (0, false, no, off). */
function warmEnabled(env = process.env) {
  return !/^(0|false|no|off)$/i.test(env.FIXTURE_BROKER_WARM || '');
}

function baseDir(env = process.env) {
  if (env.FIXTURE_BROKER_WARM_DIR) return path.resolve(env.FIXTURE_BROKER_WARM_DIR);
  const cache = env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(cache, 'fixture-broker', 'warm');
}

/** The directory of a project's warm broker. */
function warmDir(projectRoot, env = process.env) {
  let real = path.resolve(projectRoot);
  try {
    real = fs.realpathSync(real);
  } catch {
    /* not there yet: the resolved path */
  }
  const key = crypto.createHash('sha256').update(real).digest('hex').slice(0, 16);
  return path.join(baseDir(env), key);
}

/** The project of a `fixture-broker run` or stop: the nearest directory with a package.json. */
function projectRootFrom(dir) {
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    if (fs.existsSync(path.join(d, 'package.json'))) return d;
    if (path.dirname(d) === d) return path.resolve(dir);
  }
}

function readJson(file) {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return null;
  }
}

function alive(pid) {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/* What this run would start: compared with broker.json to decide whether to reuse. */
function wanted(options) {
  const env = brokerEnv(options.env || process.env);
  return {
    format: FORMAT,
    version: VERSION,
    bin: findBrokerBinary(options.bin),
    args: [...splitArgs(process.env.FIXTURE_BROKER_ARGS), ...(options.args || [])],
    pgBindir: env.FIXTURE_BROKER_PG_BINDIR || null,
  };
}

function compatible(info, want) {
  return Boolean(info) && info.format === want.format && info.version === want.version &&
    info.bin === want.bin && JSON.stringify(info.args) === JSON.stringify(want.args) &&
    (info.pgBindir || null) === want.pgBindir;
}

/* broker.status of the broker at url, or null when it does not answer. */
async function status(url) {
  let client = null;
  try {
    client = await connect({ url, client: 'fixture-broker-warm', connectTimeoutMs: 3000,
      timeoutMs: 5000 });
    return await client.status();
  } catch {
    return null;
  } finally {
    if (client) await client.close().catch(() => {});
  }
}

/** The running warm broker of dir, `{...broker.json, status}`, or null. */
async function running(dir) {
  const info = readJson(path.join(dir, 'broker.json'));
  if (!info || !alive(info.keeper)) return null;
  const st = await status(info.url);
  return st ? { ...info, status: st } : null;
}

/** Stops the keeper of dir (SIGTERM: it stops the broker) and waits until it is gone. */
async function stop(dir, { timeoutMs = 30000 } = {}) {
  const info = readJson(path.join(dir, 'broker.json'));
  const lock = readJson(path.join(dir, 'start.lock'));
  const pids = [info && info.keeper, lock && lock.keeper].filter((p) => alive(p));
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* gone */
    }
  }
  const deadline = Date.now() + timeoutMs;
  while (pids.some(alive)) {
    if (Date.now() > deadline) {
      throw new Error(`fixture-broker: the warm broker's keeper (pid ${pids.join(', ')}) did not stop ` +
        `within ${timeoutMs} ms`);
    }
    await sleep(50);
  }
  return pids.length > 0;
}

function takeLock(file) {
  try {
    const fd = fs.openSync(file, 'wx', 0o600);
    fs.writeSync(fd, JSON.stringify({ pid: process.pid }));
    fs.closeSync(fd);
    return true;
  } catch (err) {
    if (err.code !== 'EEXIST') throw err;
    const held = readJson(file);
    /* A holder that died (or a lock whose writer died before writing) is stale. */
    if (!held || (!alive(held.pid) && !alive(held.keeper))) {
      let age = 0;
      try {
        age = Date.now() - fs.statSync(file).mtimeMs;
      } catch {
        return false;
      }
      if (held || age > 5000) fs.rmSync(file, { force: true });
    }
    return false;
  }
}

function tail(file, bytes = 3000) {
  try {
    const text = fs.readFileSync(file, 'utf8');
    return text.slice(-bytes).trim();
  } catch {
    return '';
  }
}

/* Starts a keeper for dir and waits for its broker.json. */
async function startKeeper(dir, want, options) {
  const idleExitMs = options.idleExitMs !== undefined ? options.idleExitMs
    : Number(process.env.FIXTURE_BROKER_IDLE_EXIT_MS) || DEFAULT_IDLE_EXIT_MS;
  const config = { ...want, dir, idleExitMs, projectRoot: options.projectRoot };
  fs.rmSync(path.join(dir, 'broker.json'), { force: true });
  const log = fs.openSync(path.join(dir, 'keeper.log'), 'w');
  let keeper;
  try {
    keeper = spawn(process.execPath, [KEEPER, JSON.stringify(config)], {
      detached: true,
      /* The relative paths of the broker's --config are its working directory's. */
      cwd: options.projectRoot,
      stdio: ['ignore', log, log],
      env: brokerEnv(options.env || process.env),
    });
  } finally {
    fs.closeSync(log);
  }
  let exited = null;
  keeper.once('exit', (code, signal) => { exited = { code, signal }; });
  keeper.unref();
  fs.writeFileSync(path.join(dir, 'start.lock'), JSON.stringify({ pid: process.pid, keeper: keeper.pid }));
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const info = readJson(path.join(dir, 'broker.json'));
    if (info && info.keeper === keeper.pid) return info;
    if (exited || !alive(keeper.pid)) {
      throw new Error(`fixture-broker: the warm broker did not start (keeper ${exited && exited.signal
        ? `killed by ${exited.signal}` : `exited with ${exited ? exited.code : '?'}`}):\n` +
        `${tail(path.join(dir, 'keeper.log'))}\n${tail(path.join(dir, 'broker.log'))}`);
    }
    if (Date.now() > deadline) {
      try {
        process.kill(keeper.pid, 'SIGTERM');
      } catch {
        /* gone */
      }
      throw new Error(`fixture-broker: the warm broker did not start within ${START_TIMEOUT_MS} ms ` +
        `(see ${path.join(dir, 'keeper.log')})`);
    }
    await sleep(25);
  }
}

/**
 * The URL of the project's warm broker, started if none is running and compatible.
 * Options: projectRoot (required), args (extra broker flags), bin, idleExitMs, env.
 * Resolves to `{url, dir, reused, keeper, broker}`.
 */
async function ensure(options) {
  const want = wanted(options);
  const dir = warmDir(options.projectRoot, options.env);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (process.getuid && process.getuid() === 0) {
    /* As root the broker runs PostgreSQL as another user, who must pass through (not list)
     * to the cluster in state/; else the broker puts it under /var/lib. */
    fs.mkdirSync(path.join(dir, 'state'), { recursive: true });
    fs.chmodSync(baseDir(options.env), 0o711);
    fs.chmodSync(dir, 0o711);
    fs.chmodSync(path.join(dir, 'state'), 0o711);
  }
  const lockFile = path.join(dir, 'start.lock');
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const found = await running(dir);
    if (found && compatible(found, want) && found.status.version === VERSION) {
      return { url: found.url, dir, reused: true, keeper: found.keeper, broker: found.broker };
    }
    if (takeLock(lockFile)) {
      try {
        const again = await running(dir);
        if (again && compatible(again, want) && again.status.version === VERSION) {
          return { url: again.url, dir, reused: true, keeper: again.keeper, broker: again.broker };
        }
        if (again) {
          const st = again.status;
          /* Its keeper and this lookup are two sessions. */
          if (st.sessions > 2 || st.leases > 0 || st.waiting > 0 || st.sessions_in_grace > 0) {
            throw new Error(`fixture-broker: a warm broker of another version or configuration ` +
              `is serving this project (${again.url}, keeper pid ${again.keeper}); stop it with ` +
              '`npx fixture-broker stop` or set FIXTURE_BROKER_WARM=0');
          }
          await stop(dir);
        }
        const info = await startKeeper(dir, want, options);
        return { url: info.url, dir, reused: false, keeper: info.keeper, broker: info.broker };
      } finally {
        fs.rmSync(lockFile, { force: true });
      }
    }
    if (Date.now() > deadline) {
      throw new Error(`fixture-broker: another run has been starting the warm broker for over ` +
        `${START_TIMEOUT_MS} ms (${lockFile})`);
    }
    await sleep(50);
  }
}

module.exports = {
  DEFAULT_IDLE_EXIT_MS, ensure, stop, running, warmDir, warmEnabled, projectRootFrom,
};
