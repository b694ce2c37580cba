// record.cjs: appends what a run saw to $FXB_WARM_OUT: the broker's URL and pid, and when its PostgreSQL started.
'use strict';

const fs = require('node:fs');
const { Client } = require('pg');
const { connect } = require('../../index.cjs');

module.exports = async function record(runner, dbUrl) {
  const db = new Client({ connectionString: dbUrl });
  await db.connect();
  let pgStart;
  try {
    pgStart = (await db.query('SELECT pg_postmaster_start_time()::text AS t')).rows[0].t;
  } finally {
    await db.end();
  }
  const client = await connect({ client: 'warm-record' });
  let brokerUptimeMs;
  try {
    brokerUptimeMs = (await client.status()).uptime_ms;
  } finally {
    await client.close();
  }
  const line = { runner, url: process.env.FIXTURE_BROKER_URL, pgStart, brokerUptimeMs };
  fs.appendFileSync(process.env.FXB_WARM_OUT, `${JSON.stringify(line)}\n`);
  return line;
};
