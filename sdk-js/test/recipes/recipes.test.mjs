// recipes.test.mjs: the README's template recipes, each built by its real library (this directory's lock file) on the real broker.
//
// Runs this directory's Jest project (one template and one test file per recipe) against a
// broker of its own, with workers, and checks that every lease went back.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { before, test } from 'node:test';
import { connect } from '../../index.mjs';
import { startBroker, until } from '../helpers/broker.mjs';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const JEST = path.join(HERE, '..', '..', 'node_modules', '.bin', 'jest');
let broker;

before(async () => {
  broker = await startBroker(['--ports', '28470-28499']);
});

test('plain SQL, knex, sequelize.sync(), TypeORM and drizzle-kit push build templates that the clones have', async () => {
  const r = spawnSync(process.execPath, [JEST, '--config', 'jest.config.cjs', '--ci', '--maxWorkers=2'], {
    cwd: HERE, encoding: 'utf8', timeout: 240000,
    env: { ...process.env, FIXTURE_BROKER_URL: broker.url, FIXTURE_BROKER_BIN: '/nonexistent' },
  });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  for (const recipe of ['sql', 'knex', 'sequelize', 'typeorm', 'drizzle']) {
    assert.match(r.stderr, new RegExp(`PASS \\S*${recipe}\\.test\\.cjs`));
  }
  assert.match(r.stderr, /Tests: +5 passed, 5 total/);
  const c = await connect({ url: broker.url });
  try {
    await until(async () => (await c.status()).leases === 0);
    /* One client-built template per recipe, built once whatever the number of workers. */
    const built = (await c.call('pg.status', {})).templates.filter((t) => !t.configured && !t.empty);
    assert.equal(built.length, 5);
    assert.ok(built.every((t) => t.state === 'ready'), JSON.stringify(built));
  } finally {
    await c.close();
  }
});
