// suite-setup.mjs: this suite's globalSetup: the package's (find or start the broker), and at the end a check that no lease is left.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connect } from 'fixture-broker';
import setup from 'fixture-broker/vitest/global-setup';

export default async function suiteSetup(project) {
  const stop = await setup(project);
  const records = fs.mkdtempSync(path.join(os.tmpdir(), 'fxb-vitest-suite-'));
  project.provide('suiteRecords', records);
  return async () => {
    let status;
    try {
      const client = await connect({ client: 'vitest-suite-check' });
      status = await client.status();
      await client.close();
    } finally {
      await stop();
    }
    const entries = fs.readdirSync(records)
      .map((f) => JSON.parse(fs.readFileSync(path.join(records, f), 'utf8')));
    fs.rmSync(records, { recursive: true, force: true });
    if (status.leases !== 0 || status.ports.leased !== 0) {
      throw new Error(`leases left after the run: ${JSON.stringify(status)}`);
    }
    if (entries.length < 3) throw new Error(`only ${entries.length} test files recorded`);
    if (new Set(entries.map((e) => e.lease)).size !== entries.length) {
      throw new Error('two files got the same lease');
    }
  };
}
