// matrix.test.mjs: the runner matrix: Jest 29 and 30, Vitest 3 and 4, node --test, each with the packed package installed.
//
// make js-matrix packs sdk-js (npm pack, into $FXB_MATRIX_TARBALL) and installs it with
// `npm i --no-save` into each project here after `npm ci` of the project's lock file, as a
// user's project has it: the runner's own jest-environment-node or vitest is the one the
// package loads. Each run starts a private broker (FIXTURE_BROKER_WARM=0,
// FIXTURE_BROKER_BIN: the build's) and leases a port and a database per file (per worker
// with Vitest's test.extend), with two workers.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const HERE = fileURLToPath(new URL('.', import.meta.url));

function run(project, args) {
  const cwd = path.join(HERE, project);
  const env = { ...process.env, FIXTURE_BROKER_WARM: '0', FORCE_COLOR: '0', NO_COLOR: '1' };
  /* Else node --test in the child thinks it runs inside this one and skips its files. */
  delete env.NODE_TEST_CONTEXT;
  const r = spawnSync(process.execPath, args.map((a) => (a.startsWith('.bin/') ? path.join(cwd, 'node_modules', a) : a)), {
    cwd, encoding: 'utf8', timeout: 180000, env,
  });
  const out = `${r.stdout}\n${r.stderr}`;
  assert.equal(r.status, 0, `${project}: ${args.join(' ')}\n${out}`);
  return out;
}

for (const jest of ['jest29', 'jest30']) {
  test(`${jest}: three files, two workers, the preset of the installed package`, () => {
    const out = run(jest, ['.bin/jest', '--ci']);
    assert.match(out, /Tests: +3 passed, 3 total/);
  });
}

for (const vitest of ['vitest3', 'vitest4']) {
  test(`${vitest}: projects, maxWorkers, per-file fixtures and worker-scoped test.extend fixtures`, () => {
    const out = run(vitest, ['.bin/vitest', 'run']);
    assert.match(out, /Test Files +4 passed \(4\)/);
    assert.match(out, /Tests +4 passed \(4\)/);
    assert.match(out, /\|files\|/);
    assert.match(out, /\|extend\|/);
  });
}

test('node --test under fixture-broker run', () => {
  const out = run('node-test', ['.bin/fixture-broker', 'run', '--', process.execPath, '--test']);
  assert.match(out, /# pass 2/);
  assert.match(out, /# fail 0/);
});
