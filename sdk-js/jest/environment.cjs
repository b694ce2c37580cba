// environment.cjs: the fixture-broker Jest test environment: jest-environment-node plus the file's leased fixtures.
//
// One broker connection per worker process, kept at module level: Jest loads this module
// once per worker and runs every test file of that worker through it, so the connection is
// shared by all of them (in band, the parent process is the one worker). The socket is
// unref'd while idle, so it never keeps a worker or an in-band run from exiting.
//
// For each test file: the fixtures it needs are testEnvironmentOptions.fixtures merged with
// the file's `@fixtures` docblock pragma (the pragma wins on a name). setup() leases them and
// puts their fields on the test's global as plain values (`fixtures.http.port`, or the name in
// testEnvironmentOptions.globalName); teardown() releases the file's lease. Postgres fixtures
// are leased once per worker and reset for each file instead (lib/fixture-scope.cjs).
// JEST_WORKER_ID is only a label: every name and port comes from the broker.
//
// testEnvironmentOptions.env maps environment variables to fixture fields (lib/env-map.cjs):
// setup() sets them in the file's own process.env, before the test file (and
// setupFilesAfterEnv) runs, so an app configured by the environment can be required at the
// top of the file. Jest runs setupFiles before setup(): reading the fixtures' global there
// throws an error that says so, instead of giving undefined fields.
'use strict';

const path = require('node:path');
const { TestEnvironment } = require('jest-environment-node');
const { connect } = require('../lib/client.cjs');
const { formatLogTail } = require('../lib/errors.cjs');
const { leaseFixtures, parseFixturesPragma } = require('../lib/fixture-scope.cjs');
const { resolveEnv, envFixtureNames } = require('../lib/env-map.cjs');

const DEFAULT_WAIT_MS = 60000;

/* The worker's connection, made on first use. */
let clientPromise = null;

function workerClient() {
  if (!clientPromise) {
    const p = connect({
      client: 'jest',
      labels: { runner: 'jest', worker: process.env.JEST_WORKER_ID },
    }).then((client) => {
      client.once('close', () => {
        if (clientPromise === p) clientPromise = null;
      });
      return client;
    }, (err) => {
      if (clientPromise === p) clientPromise = null;
      throw err;
    });
    clientPromise = p;
  }
  return clientPromise;
}

function describeFixtureOptions(fixtures, where) {
  if (fixtures === undefined) return {};
  if (!fixtures || typeof fixtures !== 'object' || Array.isArray(fixtures)) {
    throw new Error(`${where}: fixtures must be an object of name -> {kind, ...}`);
  }
  return fixtures;
}

class FixtureBrokerEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    const project = config.projectConfig;
    const options = project.testEnvironmentOptions || {};
    const rel = path.relative(project.rootDir, context.testPath || '') || context.testPath;
    this.fixtureBroker = {
      options,
      rootDir: project.rootDir,
      file: rel,
      console: context.console,
      specs: {
        ...describeFixtureOptions(options.fixtures, 'testEnvironmentOptions'),
        ...parseFixturesPragma(context.docblockPragmas && context.docblockPragmas.fixtures,
          `${rel}: @fixtures`),
      },
      scope: null,
      client: null,
      onExit: null,
    };
    envFixtureNames(options.env);
    const globalName = options.globalName || 'fixtures';
    const file = rel;
    /* Replaced by the values in setup(); until then (setupFiles), reading it is an error. */
    Object.defineProperty(this.global, globalName, {
      configurable: true,
      enumerable: false,
      get() {
        throw new Error(`fixture-broker: \`${globalName}\` was read in ${file} before the test ` +
          'environment leased the fixtures: Jest runs `setupFiles` before that; read it in ' +
          '`setupFilesAfterEnv`, the test file or its hooks (and for an app configured by ' +
          'environment variables, use testEnvironmentOptions.env)');
      },
    });
  }

  async setup() {
    await super.setup();
    const fb = this.fixtureBroker;
    const globalName = fb.options.globalName || 'fixtures';
    const setGlobal = (value) => Object.defineProperty(this.global, globalName, {
      configurable: true, enumerable: true, writable: true, value,
    });
    if (!Object.keys(fb.specs).length) {
      setGlobal(this.global.JSON.parse('{}'));
      resolveEnv(fb.options.env, {});
      return;
    }
    const client = await workerClient();
    fb.client = client;
    fb.scope = await leaseFixtures(client, fb.specs, {
      waitMs: fb.options.waitMs === undefined ? DEFAULT_WAIT_MS : fb.options.waitMs,
      ttlMs: fb.options.ttlMs,
      templates: fb.options.templates,
      rootDir: fb.rootDir,
      labels: { runner: 'jest', worker: process.env.JEST_WORKER_ID, file: fb.file },
    });
    const lease = fb.scope.lease;
    /* Built in the test's realm, so they are its own plain objects. */
    setGlobal(this.global.JSON.parse(JSON.stringify(fb.scope.fixtures)));
    Object.assign(this.global.process.env, resolveEnv(fb.options.env, fb.scope.fixtures));
    this.global.fixtureBroker = {
      url: client.url,
      session: client.session,
      lease: lease ? lease.id : null,
      logs: (name, options) => (lease ? client.logs(lease, name, options)
        : Promise.reject(new Error(`${fb.file} holds no file-scoped lease`))),
    };
    fb.onExit = (params) => {
      if (!params || !lease || params.lease !== lease.id) return;
      const how = params.signal ? `was killed by ${params.signal}` : `exited with ${params.status}`;
      const tail = formatLogTail(params.log_tail);
      fb.console.error(`fixture-broker: server fixture "${params.fixture}" of ${fb.file} ${how}` +
        (tail ? `\n${tail}` : ''));
    };
    client.on('server.exited', fb.onExit);
  }

  async teardown() {
    const fb = this.fixtureBroker;
    try {
      if (fb.onExit) fb.client.removeListener('server.exited', fb.onExit);
      if (fb.scope) await fb.scope.release();
    } catch (err) {
      /* A lost connection loses the lease with it: the broker reclaims it. */
      if (!['CONNECTION_LOST', 'CLIENT_CLOSED', 'TIMEOUT'].includes(err && err.errorName)) throw err;
    } finally {
      fb.scope = null;
      await super.teardown();
    }
  }
}

module.exports = FixtureBrokerEnvironment;
module.exports.default = FixtureBrokerEnvironment;
module.exports.TestEnvironment = FixtureBrokerEnvironment;
