// ports-vs-get-port.mjs: 8 Node processes taking ports through the SDK, against get-port in the same processes.
//
// Run from `make bench` (target js-ports-bench) or `node bench/ports-vs-get-port.mjs` in sdk-js.
// Each of PROCS child processes (default 8) takes COUNT ports (default 100) one after another
// and keeps them all (as a test keeps a port while its server runs), once through a broker
// lease and once through get-port over the same range, released to run at the same moment.
// Printed: time per port (p50, p99) and how many ports were handed to more than one
// process. get-port's lock lives inside one process, so across processes it cannot know
// what the others took; the broker is one allocator for the host.
import { fork } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const PROCS = Number(process.env.PORTS_BENCH_PROCS) || 8;
const COUNT = Number(process.env.PORTS_BENCH_COUNT) || 100;
const FIRST = 28700;
const LAST = 29699;

async function child(kind, count, url) {
  const ports = [];
  const times = [];
  let take;
  let done = async () => {};
  if (kind === 'broker') {
    const { connect } = require('../index.cjs');
    const client = await connect({ url, client: 'ports-bench' });
    const leases = [];
    take = async () => {
      const lease = await client.acquire({ fixtures: { p: { kind: 'port' } }, waitMs: 5000 });
      leases.push(lease);
      return lease.fixtures.p.port;
    };
    done = async () => {
      for (const l of leases) await l.release();
      await client.close();
    };
  } else {
    const { default: getPort, portNumbers } = await import('get-port');
    take = () => getPort({ port: portNumbers(FIRST, LAST) });
  }
  await new Promise((resolve) => process.once('message', resolve)); // the start signal
  for (let i = 0; i < count; i++) {
    const t0 = process.hrtime.bigint();
    ports.push(await take());
    times.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  process.send({ ports, times });
  await new Promise((resolve) => process.once('message', resolve)); // all have reported
  await done();
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function round(kind, url) {
  const kids = [];
  for (let i = 0; i < PROCS; i++) {
    kids.push(fork(fileURLToPath(import.meta.url), ['child', kind, String(COUNT), url || ''],
      { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  }
  await new Promise((resolve) => setTimeout(resolve, 1500)); // every child loaded and connected
  const results = kids.map((k) => new Promise((resolve, reject) => {
    k.once('message', resolve);
    k.once('exit', (code) => code && reject(new Error(`${kind} child exited ${code}`)));
  }));
  const t0 = process.hrtime.bigint();
  kids.forEach((k) => k.send('go'));
  const reports = await Promise.all(results);
  const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
  kids.forEach((k) => k.send('done'));
  await Promise.all(kids.map((k) => new Promise((resolve) => k.once('exit', resolve))));
  const owners = new Map();
  reports.forEach((r, i) => r.ports.forEach((p) => {
    if (!owners.has(p)) owners.set(p, new Set());
    owners.get(p).add(i);
  }));
  const shared = [...owners.values()].filter((s) => s.size > 1).length;
  const times = reports.flatMap((r) => r.times).sort((a, b) => a - b);
  return { wallMs, shared, distinct: owners.size, p50: percentile(times, 50), p99: percentile(times, 99) };
}

async function main() {
  const { startBroker } = require('../lib/broker-process.cjs');
  const broker = await startBroker({
    args: ['--ports', `${FIRST}-${LAST}`, '--port-quarantine-ms', '0', '--log-level', 'warn'],
  });
  let failed = false;
  try {
    const viaBroker = await round('broker', broker.url);
    const viaGetPort = await round('get-port');
    const total = PROCS * COUNT;
    console.log(`port leasing, ${PROCS} Node processes x ${COUNT} ports each, all kept until the end, range ${FIRST}-${LAST}`);
    console.log('                         time/port p50   p99      wall ms   distinct  ports handed to >1 process');
    for (const [name, r] of [['fixture-broker (SDK)', viaBroker], ['get-port', viaGetPort]]) {
      console.log(`  ${name.padEnd(22)} ${r.p50.toFixed(0).padStart(8)} us ${r.p99.toFixed(0).padStart(6)} us ` +
        `${r.wallMs.toFixed(0).padStart(9)} ${String(r.distinct).padStart(6)}/${total}  ${r.shared}`);
    }
    console.log(`  time per port, SDK / get-port: ${(viaBroker.p50 / viaGetPort.p50).toFixed(2)}x (p50)`);
    if (viaBroker.shared !== 0) {
      console.log('  the broker handed a port to more than one process: this is a bug');
      failed = true;
    }
  } finally {
    await broker.stop();
  }
  process.exitCode = failed ? 1 : 0;
}

if (process.argv[2] === 'child') {
  child(process.argv[3], Number(process.argv[4]), process.argv[5]).catch((e) => {
    console.error(e);
    process.exit(1);
  });
} else {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
