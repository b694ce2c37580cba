// acquire.mjs: the Node client's acquire round trip: N lease.acquire + lease.release of one port.
//
// The same measurement as sdk-py/bench/acquire.py, sdk-go/bench/acquire and
// tests/bench/acquire_client.c, for tests/bench/clients.sh to compare in one run: one
// connection to $FIXTURE_BROKER_URL, WARMUP round trips not counted, then N timed ones, each
// an acquire of {"p": {"kind": "port"}} followed by the release of that lease. Prints one
// JSON line: {"client": "node", "n": N, "p50_us": ..., "p99_us": ..., "mean_us": ...}.
// N and WARMUP: the arguments (node acquire.mjs [N] [WARMUP]), default 2000 and 200.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { connect } = require('../index.cjs');

const n = Number(process.argv[2]) || 2000;
const warmup = Number(process.argv[3] ?? 200);
const client = await connect({ url: process.env.FIXTURE_BROKER_URL, client: 'acquire-bench' });
const times = [];
for (let i = 0; i < warmup + n; i++) {
  const start = process.hrtime.bigint();
  const lease = await client.acquire({ fixtures: { p: { kind: 'port' } } });
  await lease.release();
  const us = Number(process.hrtime.bigint() - start) / 1000;
  if (i >= warmup) times.push(us);
}
await client.close();
times.sort((a, b) => a - b);
const rank = (p) => times[Math.max(1, Math.ceil((p / 100) * times.length)) - 1];
const round = (x) => Math.round(x * 10) / 10;
console.log(JSON.stringify({
  client: 'node', n, p50_us: round(rank(50)), p99_us: round(rank(99)),
  mean_us: round(times.reduce((a, b) => a + b, 0) / times.length),
}));
