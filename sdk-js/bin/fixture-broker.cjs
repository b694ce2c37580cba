#!/usr/bin/env node
// fixture-broker.cjs: the package's command (`npx fixture-broker ...`): run, stop, status, else the broker itself.
//
//   fixture-broker run [--] COMMAND [ARG...]   COMMAND with FIXTURE_BROKER_URL set to the
//                                               project's warm broker (started if needed)
//   fixture-broker stop                         stops the project's warm broker
//   fixture-broker status                       prints the project's warm broker, if one runs
//   fixture-broker [FLAGS]                      the broker binary with these flags
//
// The project is the nearest directory with a package.json, from the current one. `run`
// with FIXTURE_BROKER_WARM=0 starts a private broker for the command and stops it after;
// with FIXTURE_BROKER_URL set, it runs the command against that broker.
'use strict';

const { spawn } = require('node:child_process');
const { findBrokerBinary, brokerEnv, startBroker } = require('../lib/broker-process.cjs');
const warm = require('../lib/warm.cjs');

function runChild(command, args, env) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: 'inherit', env });
    const forward = (sig) => child.kill(sig);
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, forward);
    child.once('error', (err) => {
      console.error(`fixture-broker run: ${command}: ${err.message}`);
      resolve(127);
    });
    child.once('exit', (code, signal) => resolve(signal ? 128 + (require('node:os').constants.signals[signal] || 1) : code));
  });
}

async function main(argv) {
  const [sub, ...rest] = argv;
  const projectRoot = warm.projectRootFrom(process.cwd());
  if (sub === 'run') {
    const command = rest[0] === '--' ? rest.slice(1) : rest;
    if (!command.length) {
      console.error('usage: fixture-broker run [--] COMMAND [ARG...]');
      return 2;
    }
    let broker = null;
    const env = { ...process.env };
    if (!env.FIXTURE_BROKER_URL) {
      if (warm.warmEnabled()) {
        env.FIXTURE_BROKER_URL = (await warm.ensure({ projectRoot })).url;
      } else {
        broker = await startBroker();
        env.FIXTURE_BROKER_URL = broker.url;
      }
    }
    const status = await runChild(command[0], command.slice(1), env);
    if (broker) await broker.stop();
    return status;
  }
  if (sub === 'stop') {
    const dir = warm.warmDir(projectRoot);
    const stopped = await warm.stop(dir);
    console.log(stopped ? `fixture-broker: stopped the warm broker of ${projectRoot}`
      : `fixture-broker: no warm broker runs for ${projectRoot}`);
    return 0;
  }
  if (sub === 'status') {
    const found = await warm.running(warm.warmDir(projectRoot));
    if (!found) {
      console.log(`fixture-broker: no warm broker runs for ${projectRoot}`);
      return 1;
    }
    console.log(JSON.stringify(found, null, 2));
    return 0;
  }
  return runChild(findBrokerBinary(), argv, brokerEnv());
}

main(process.argv.slice(2)).then((code) => process.exit(code), (err) => {
  console.error(err.message);
  process.exit(1);
});
