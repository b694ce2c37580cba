// keeper.cjs: runs a project's warm broker and stops it once idle (started by lib/warm.cjs, detached).
//
//   node keeper.cjs '{"dir": ..., "bin": ..., "args": [...], "idleExitMs": ..., ...}'
//
// Starts the broker (lib/broker-process.cjs: under its watchdog, so the broker stops if this
// process dies) with --state-dir <dir>/state and the run's flags, its log in <dir>/broker.log
// (emptied at each start), writes <dir>/broker.json
// once it listens, and keeps a session of its own to poll `broker.status` every second. When
// the broker has had no other session (connected or in its grace period), no lease and no
// waiter for idleExitMs, it removes broker.json, looks once more (a run that read the file
// just before may have connected meanwhile: then it writes the file again and goes on), and
// stops the broker. SIGTERM, SIGINT and SIGHUP stop it at once. If the broker exits on its
// own, broker.json goes and the keeper exits with status 1.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { startBroker } = require('./broker-process.cjs');
const { connect } = require('./client.cjs');

const POLL_MS = 1000;
const config = JSON.parse(process.argv[2]);
const infoFile = path.join(config.dir, 'broker.json');
const log = (msg) => console.log(`${new Date().toISOString()} keeper ${process.pid}: ${msg}`);

function writeInfo(info) {
  const tmp = `${infoFile}.${process.pid}`;
  fs.writeFileSync(tmp, `${JSON.stringify(info, null, 2)}\n`);
  fs.renameSync(tmp, infoFile);
}

function removeInfo() {
  const info = (() => {
    try {
      return JSON.parse(fs.readFileSync(infoFile, 'utf8'));
    } catch {
      return null;
    }
  })();
  if (info && info.keeper === process.pid) fs.rmSync(infoFile, { force: true });
}

const idle = (st) => st.sessions <= 1 && !st.sessions_in_grace && !st.leases && !st.waiting;

async function main() {
  /* The run's flags are in config.args already. */
  delete process.env.FIXTURE_BROKER_ARGS;
  /* The log of this start only (startBroker appends), so it does not grow across starts. */
  const logFile = path.join(config.dir, 'broker.log');
  fs.writeFileSync(logFile, '');
  const broker = await startBroker({
    bin: config.bin,
    args: ['--state-dir', path.join(config.dir, 'state'), ...config.args],
    logFile,
  });
  broker.child.ref();
  const info = {
    format: config.format, version: config.version, bin: config.bin, args: config.args,
    pgBindir: config.pgBindir, url: broker.url, keeper: process.pid, broker: broker.pid,
    idleExitMs: config.idleExitMs, projectRoot: config.projectRoot,
    started: new Date().toISOString(),
  };
  log(`broker ${broker.url} (pid ${broker.pid}), idle exit after ${config.idleExitMs} ms`);

  let stopping = null;
  let client = null;
  let timer = null;
  const shutdown = (why, code = 0) => {
    if (!stopping) {
      stopping = (async () => {
        log(`stopping: ${why}`);
        removeInfo();
        clearInterval(timer);
        if (client) await client.close({ release: false }).catch(() => {});
        const result = await broker.stop();
        log(`broker stopped (${result.signal || result.code})`);
        process.exit(code);
      })();
    }
    return stopping;
  };
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(sig, () => shutdown(sig));
  broker.exited.then((r) => {
    if (!stopping) {
      log(`the broker exited on its own (${r.signal || r.code})`);
      removeInfo();
      process.exit(1);
    }
  });

  client = await connect({ url: broker.url, client: 'fixture-broker-keeper' });
  writeInfo(info);
  let lastBusy = Date.now();
  let polling = false;
  timer = setInterval(async () => {
    if (polling || stopping) return;
    polling = true;
    try {
      const st = await client.status();
      if (!idle(st)) {
        lastBusy = Date.now();
      } else if (Date.now() - lastBusy >= config.idleExitMs) {
        removeInfo();
        await new Promise((resolve) => setTimeout(resolve, 200));
        if (idle(await client.status())) {
          await shutdown(`idle for ${config.idleExitMs} ms`);
          return;
        }
        lastBusy = Date.now();
        writeInfo(info);
      }
    } catch (err) {
      log(`broker.status: ${err.message}`);
    } finally {
      polling = false;
    }
  }, Math.min(POLL_MS, Math.max(50, config.idleExitMs / 4)));
}

main().catch((err) => {
  log(err.stack || String(err));
  removeInfo();
  process.exit(1);
});
