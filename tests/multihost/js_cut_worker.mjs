// js_cut_worker.mjs: an sdk-js worker (from this checkout) for the link-cut tests of test_cuts.py.
//
// Connects to $FIXTURE_BROKER_URL, leases one port fixture "p" and prints {session, lease,
// port} on a line. When a line comes on stdin (the test sends it once the link is back up)
// it waits for the client's reconnection after the drop it must have noticed, and prints
// what the client says: {droppedWhileDown, disconnect, reconnect, sessionLost, session,
// lease: {released, lost}, listed, renew, release}; renew is 'ok' or the error's name.
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { connect } from '../../sdk-js/index.mjs';

const c = await connect();
const lease = await c.acquire({ fixtures: { p: 'port' } });
const events = { disconnect: null, reconnect: null, sessionLost: null };
c.on('disconnect', (e) => { events.disconnect = e; });
c.on('reconnect', (e) => { events.reconnect = e; });
c.on('sessionLost', (e) => {
  events.sessionLost = { previous: e.previous, session: e.session, leases: e.leases.map((l) => l.id) };
});
const reconnected = once(c, 'reconnect');
console.log(JSON.stringify({ session: c.session, lease: lease.id, port: lease.fixtures.p.port }));

const lines = createInterface({ input: process.stdin });
await once(lines, 'line');
lines.close();
/* With the link down nothing (no RST, no close) could tell the client: only the silence. */
const droppedWhileDown = events.disconnect !== null;
const timer = setTimeout(() => {
  console.error(`js_cut_worker: no reconnection within 30 s (${JSON.stringify(events)})`);
  process.exit(1);
}, 30000);
await reconnected;
clearTimeout(timer);

const listed = (await c.list()).map((l) => ({ lease: l.lease, port: l.fixtures.p && l.fixtures.p.port }));
let renew = 'ok';
try {
  await lease.renew(60000);
} catch (err) {
  renew = err.errorName;
}
const release = await lease.release();
console.log(JSON.stringify({
  droppedWhileDown, ...events, session: c.session, lease: { released: lease.released, lost: lease.lost },
  listed, renew, release,
}));
await c.close();
