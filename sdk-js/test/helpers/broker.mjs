// broker.mjs: test helpers: start a real broker for a test file, and wait for a condition without timing assertions.
import { after } from 'node:test';
import brokerProcess from '../../lib/broker-process.cjs';

const started = [];

/* Registered when a test file imports this module, so it runs when the whole file ends,
 * whichever hook or test started the brokers. */
after(() => Promise.all(started.map((b) => b.stop())));

/**
 * Starts the broker binary on 127.0.0.1:0 with these flags; it is stopped (SIGTERM, then
 * waited for) when the test file ends. Resolves to {url, pid, logFile, stop}.
 */
export async function startBroker(args = []) {
  const broker = await brokerProcess.startBroker({ args });
  /* The client's sockets are unref'd while idle (by design); a test that awaits an event
   * needs something to keep the process alive meanwhile: the broker child does. */
  broker.child.ref();
  started.push(broker);
  return broker;
}

/** Resolves once `check()` resolves to a truthy value, polling; the test's timeout bounds it. */
export async function until(check, intervalMs = 20) {
  for (;;) {
    const v = await check();
    if (v) return v;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
