// setup.mjs: the fixture-broker Vitest setup file: leases each test file's fixtures in beforeAll, releases them in afterAll.
//
// The fixtures a file needs are `test.provide.fixtureBroker.fixtures` from the Vitest config
// merged with the file's `@fixtures` docblock pragma (the pragma wins on a name). They are on
// `globalThis.fixtures` from beforeAll on: read them in hooks and tests, not at the top level
// of the file, which Vitest runs before any hook. One connection per worker (kept on
// globalThis, so files share it when Vitest does not isolate them); the socket is unref'd while
// idle. Postgres fixtures are leased once per worker and reset per file. VITEST_POOL_ID is only
// a label. `provide.fixtureBroker.env` sets environment variables from the fixtures' fields
// (lib/env-map.cjs) in beforeAll, after the file's top level has run: an app that reads them
// when it is imported must be imported in beforeAll (`await import('../app.js')`).
import { beforeAll, afterAll, expect, inject } from 'vitest';
import cjs from '../index.cjs';
import scope from '../lib/fixture-scope.cjs';
import envMap from '../lib/env-map.cjs';

const { connect } = cjs;
const { leaseFixtures, parseFixturesPragma, readFilePragmas } = scope;
const { resolveEnv, envFixtureNames } = envMap;

const CLIENT = Symbol.for('fixture-broker.vitest.client');
const DEFAULT_WAIT_MS = 60000;

function workerClient(url) {
  const held = globalThis[CLIENT];
  if (held && held.url === url) return held.promise;
  const promise = connect({
    url,
    client: 'vitest',
    labels: { runner: 'vitest', pool: process.env.VITEST_POOL_ID },
  }).then((client) => {
    client.once('close', () => {
      if (globalThis[CLIENT] && globalThis[CLIENT].promise === promise) globalThis[CLIENT] = undefined;
    });
    return client;
  }, (err) => {
    if (globalThis[CLIENT] && globalThis[CLIENT].promise === promise) globalThis[CLIENT] = undefined;
    throw err;
  });
  globalThis[CLIENT] = { url, promise };
  return promise;
}

const provided = inject('fixtureBroker') || {};
envFixtureNames(provided.env);
const waitMs = provided.waitMs === undefined ? DEFAULT_WAIT_MS : provided.waitMs;
let current = null;
/* The variables `env` set for this file, and what they were before. */
let savedEnv = null;

/* The file being run: Vitest 4 passes its suite as the hook's second argument, Vitest 3 as
 * the first; expect's state has it too. */
function testFile(args) {
  for (const a of args) {
    if (a && typeof a.filepath === 'string') return a.filepath;
    if (a && a.file && typeof a.file.filepath === 'string') return a.file.filepath;
  }
  return expect.getState().testPath || '';
}

beforeAll(async function leaseFileFixtures() {
  const file = testFile([...arguments]);
  const specs = {
    ...(provided.fixtures || {}),
    ...parseFixturesPragma(file ? readFilePragmas(file).fixtures : undefined, `${file}: @fixtures`),
  };
  globalThis.fixtures = {};
  globalThis.fixtureBroker = { url: provided.url, session: null, lease: null };
  if (!Object.keys(specs).length) return;
  const client = await workerClient(provided.url);
  current = await leaseFixtures(client, specs, {
    waitMs,
    ttlMs: provided.ttlMs,
    templates: provided.templates,
    rootDir: provided.rootDir || process.cwd(),
    labels: { runner: 'vitest', pool: process.env.VITEST_POOL_ID, file },
  });
  const lease = current.lease;
  globalThis.fixtures = current.fixtures;
  const vars = resolveEnv(provided.env, current.fixtures);
  savedEnv = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  Object.assign(process.env, vars);
  globalThis.fixtureBroker = {
    url: client.url,
    session: client.session,
    lease: lease ? lease.id : null,
    logs: (name, options) => (lease ? client.logs(lease, name, options)
      : Promise.reject(new Error(`${file} holds no file-scoped lease`))),
  };
}, waitMs + 60000);

afterAll(async () => {
  const held = current;
  current = null;
  for (const [k, v] of Object.entries(savedEnv || {})) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  savedEnv = null;
  if (held) await held.release();
});
