// env.test.mjs: the `env` option (lib/env-map.cjs), and reading fixtures too early, with the real broker, Jest and Vitest.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { before, test } from 'node:test';
import envMap from '../lib/env-map.cjs';
import { startBroker } from './helpers/broker.mjs';

const PKG = fileURLToPath(new URL('..', import.meta.url));
const SUITE = path.join(PKG, 'test', 'env-suite');
let broker;

before(async () => {
  broker = await startBroker(['--ports', '28450-28469']);
});

function run(bin, args) {
  return spawnSync(process.execPath, [path.join(PKG, 'node_modules', '.bin', bin), ...args], {
    cwd: SUITE, encoding: 'utf8', timeout: 120000,
    env: { ...process.env, FIXTURE_BROKER_URL: broker.url, FIXTURE_BROKER_BIN: '/nonexistent' },
  });
}

test('Jest: an env-configured app required at the top of a test file needs no bridge file', () => {
  const r = run('jest', ['--config', 'jest.config.cjs', '--ci']);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stderr, /Tests: +3 passed, 3 total/);
});

test('Vitest: the same app, imported in beforeAll', () => {
  const r = run('vitest', ['run', '--config', 'vitest.config.mjs']);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /1 passed/);
});

test('fixtures read in a setupFiles module is an error that says where to read them', () => {
  const r = run('jest', ['--config', 'too-early.config.cjs', '--ci']);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /`fixtures` was read in env\.test\.cjs before the test environment leased the fixtures: Jest runs `setupFiles` before that; read it in `setupFilesAfterEnv`/);
});

test('resolveEnv: fields, DB_* and PG* shorthands, and errors that name what is missing', () => {
  const fixtures = {
    db: { kind: 'postgres', url: 'postgresql://u:p@h:5/d', host: 'h', port: 5, user: 'u', password: 'p',
      database: 'd', schema: null },
    http: { kind: 'port', host: '127.0.0.1', port: 15001 },
  };
  assert.deepEqual(envMap.resolveEnv({ DATABASE_URL: 'db.url', PORT: 'http.port' }, fixtures),
    { DATABASE_URL: 'postgresql://u:p@h:5/d', PORT: '15001' });
  assert.deepEqual(envMap.resolveEnv({ 'DB_*': 'db' }, fixtures), { DB_HOST: 'h', DB_PORT: '5',
    DB_USER: 'u', DB_PASSWORD: 'p', DB_NAME: 'd', DB_URL: 'postgresql://u:p@h:5/d' });
  assert.deepEqual(envMap.resolveEnv({ 'PG*': 'db' }, fixtures), { PGHOST: 'h', PGPORT: '5',
    PGUSER: 'u', PGPASSWORD: 'p', PGDATABASE: 'd' });
  assert.deepEqual(envMap.resolveEnv({ 'API_*': 'http' }, fixtures), { API_HOST: '127.0.0.1', API_PORT: '15001' });
  const bad = (mapping, re) => assert.throws(() => envMap.resolveEnv(mapping, fixtures),
    (err) => err.errorName === 'INVALID_ARGUMENT' && re.test(err.message));
  bad({ X: 'nope.url' }, /X: no fixture "nope" \(this file has: db, http\)/);
  bad({ X: 'db.schema' }, /X: fixture "db" has no field "schema"/);
  bad({ X: 'db' }, /X: "db" is not "fixture.field"/);
  bad({ 'DB_*': 'db.url' }, /name a whole fixture/);
  bad({ 'not a name': 'db.url' }, /is not a variable name/);
  bad(['db.url'], /must be an object/);
});
