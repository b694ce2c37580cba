// start-and-hang.mjs: a child script for broker-process.test.mjs: starts a broker, prints its URL, then waits to be killed.
import brokerProcess from '../../lib/broker-process.cjs';

const broker = await brokerProcess.startBroker({ args: process.argv.slice(2) });
process.stdout.write(`${broker.url}\n`);
setInterval(() => {}, 60000);
