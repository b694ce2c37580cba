// lease-and-leave.mjs: a child script for unref.test.mjs: connects, acquires, maybe releases, prints, never closes the client.
import { connect } from '../../index.mjs';

const mode = process.argv[2] || 'release';
const client = await connect({ client: `unref-${mode}` });
const lease = await client.acquire({ fixtures: { http: 'port' }, waitMs: mode === 'wait' ? 60000 : 0 });
if (mode === 'release' || mode === 'wait') await lease.release();
process.stdout.write(`${JSON.stringify({ session: client.session, lease: lease.id, port: lease.fixtures.http.port })}\n`);
