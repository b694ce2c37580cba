// setup.mjs: the fixture-broker Vitest setup file: leases each test file's fixtures in beforeAll, releases them in afterAll.
//
// The fixtures a file needs are `test.provide.fixtureBroker.fixtures` from the Vitest config
// merged with the file's `@fixtures` docblock pragma (the pragma wins on a name). They are on
// `globalThis.fixtures` from beforeAll on: read them in hooks and tests, not at the top level
// of the file, which Vitest runs before any hook. One connection per worker (kept on
// globalThis, so files share it when Vitest does not isolate them); the socket is unref'd while
// idle. Postgres fixtures are leased once per worker and reset per file. VITEST_POOL_ID is only
// a label.
import { beforeAll, afterAll, expect, inject } from 'vitest';
import cjs from '../index.cjs';
import scope from '../lib/fixture-scope.cjs';

const { connect } = cjs;
const { leaseFixtures, parseFixturesPragma, readFilePragmas } = scope;

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
const waitMs = provided.waitMs === undefined ? DEFAULT_WAIT_MS : provided.waitMs;
let current = null;

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
  if (held) await held.release();
});
