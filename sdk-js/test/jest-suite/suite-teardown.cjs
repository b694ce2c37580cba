// suite-teardown.cjs: this suite's globalTeardown: checks what the files recorded and that no lease is left, then stops the broker.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { connect } = require('fixture-broker');
const teardown = require('fixture-broker/jest/global-teardown');

module.exports = async function suiteTeardown() {
  const dir = process.env.FXB_SUITE_RECORDS;
  let status;
  try {
    const client = await connect({ client: 'jest-suite-check' });
    status = await client.status();
    await client.close();
  } finally {
    await teardown();
  }
  const records = fs.readdirSync(dir).map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')));
  fs.rmSync(dir, { recursive: true, force: true });

  /* Every lease here is file-scoped, so each was released by its environment's teardown. */
  if (status.leases !== 0 || status.ports.leased !== 0) {
    throw new Error(`leases left after the run: ${JSON.stringify(status)}`);
  }
  if (records.length < 4) throw new Error(`only ${records.length} test files recorded`);
  /* One connection per worker process: all files a process ran share one session. */
  const sessionsByPid = new Map();
  for (const r of records) {
    if (!sessionsByPid.has(r.pid)) sessionsByPid.set(r.pid, new Set());
    sessionsByPid.get(r.pid).add(r.session);
  }
  for (const [pid, sessions] of sessionsByPid) {
    if (sessions.size !== 1) {
      throw new Error(`worker process ${pid} used ${sessions.size} sessions: ${[...sessions]}`);
    }
  }
  const leases = new Set(records.map((r) => r.lease));
  if (leases.size !== records.length) throw new Error('two files got the same lease');
};
