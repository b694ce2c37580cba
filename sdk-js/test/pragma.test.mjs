// pragma.test.mjs: the @fixtures pragma: its two forms, and a docblock reader that agrees with Jest's.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createRequire } from 'node:module';
import { parseFixturesPragma } from '../index.mjs';
import scope from '../lib/fixture-scope.cjs';

const require = createRequire(import.meta.url);
const docblock = require('jest-docblock');

describe('parseFixturesPragma', () => {
  test('reads JSON', () => {
    assert.deepEqual(parseFixturesPragma('{"api": {"kind": "server", "template": "api"}}'),
      { api: { kind: 'server', template: 'api' } });
  });

  test('reads name:kind and name:kind/template entries, separated by commas or spaces', () => {
    assert.deepEqual(parseFixturesPragma('http:port, db:postgres/app  grpc:port'), {
      http: { kind: 'port' },
      db: { kind: 'postgres', template: 'app' },
      grpc: { kind: 'port' },
    });
  });

  test('merges repeated pragmas, the later winning on a name', () => {
    assert.deepEqual(parseFixturesPragma(['a:port b:port', '{"b": {"kind": "postgres"}}']),
      { a: { kind: 'port' }, b: { kind: 'postgres' } });
  });

  test('says what is wrong with a bad value', () => {
    assert.throws(() => parseFixturesPragma('{"a": ', 'x.test.js: @fixtures'),
      { errorName: 'INVALID_ARGUMENT', message: /x\.test\.js: @fixtures: not valid JSON/ });
    assert.throws(() => parseFixturesPragma('["a"]'), /JSON object/);
    assert.throws(() => parseFixturesPragma('http'), /"http" is neither name:kind/);
  });

  test('no pragma is no fixtures', () => {
    assert.deepEqual(parseFixturesPragma(undefined), {});
  });
});

describe('readDocblockPragmas', () => {
  const sources = [
    '/**\n * @fixtures http:port\n */\ntest();\n',
    '/**\n * Some words.\n *\n * @fixtures {"a": {"kind": "port"},\n *   "b": {"kind": "port"}}\n * @fixtures c:port\n * @jest-environment node\n */\n',
    '#!/usr/bin/env node\n/** @fixtures a:port */\nx();\n',
    '// not a docblock\n/** @fixtures a:port */\n',
    '\n\n/**\n * @flag\n * @fixtures   spaced:port   \n */',
    '/* @fixtures single:port */\n',
    "'use strict';\n/** @fixtures late:port */\n",
  ];
  for (const [i, source] of sources.entries()) {
    test(`agrees with jest-docblock (${i + 1})`, () => {
      const jest = docblock.parse(docblock.extract(source));
      const ours = scope.readDocblockPragmas(source);
      assert.deepEqual(ours.fixtures, jest.fixtures);
      assert.deepEqual(parseFixturesPragma(ours.fixtures), parseFixturesPragma(jest.fixtures));
    });
  }
});
