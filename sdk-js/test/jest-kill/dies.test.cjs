// dies.test.cjs: records its lease, then its worker process is killed with SIGKILL in the middle of the file.
'use strict';

const fs = require('node:fs');

test('the worker dies holding a lease', () => {
  fs.writeFileSync(process.env.FXB_KILL_RECORD, JSON.stringify({
    lease: globalThis.fixtureBroker.lease,
    port: globalThis.fixtures.http.port,
  }));
  process.kill(process.pid, 'SIGKILL');
});
