// js_tls_worker.mjs: an sdk-js worker (from this checkout) for the TLS tests of test_tls.py.
//
// node js_tls_worker.mjs [OPTIONS_JSON] connects to $FIXTURE_BROKER_URL with the connect()
// options of OPTIONS_JSON, where {"ca": {"file": path}} stands for that file's contents
// (the TLS defaults come from $FIXTURE_BROKER_CA, _CERT and _KEY), leases one port fixture
// "p", releases it and prints {session, port}, exit 0; on failure {errorName, code, error},
// exit 1.
import { readFileSync } from 'node:fs';
import { connect } from '../../sdk-js/index.mjs';

const options = JSON.parse(process.argv[2] || '{}');
for (const [name, value] of Object.entries(options)) {
  if (value && typeof value === 'object' && value.file) options[name] = readFileSync(value.file);
}
try {
  const c = await connect({ client: 'js-tls-worker', ...options });
  const lease = await c.acquire({ fixtures: { p: 'port' } });
  const port = lease.fixtures.p.port;
  await lease.release();
  console.log(JSON.stringify({ session: c.session, port }));
  await c.close();
} catch (err) {
  console.log(JSON.stringify({ errorName: err.errorName, code: err.code, error: err.message }));
  process.exitCode = 1;
}
