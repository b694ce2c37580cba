// hash-files.test.mjs: the glob of hashFiles and the stability of its hash (what keys a PostgreSQL template).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { hashFiles, matchFiles } from '../index.mjs';

let root;

function write(base, files) {
  for (const [rel, body] of Object.entries(files)) {
    const abs = path.join(base, rel);
    fs.mkdirSync(path.dirname(abs), { recursive: true });
    fs.writeFileSync(abs, body);
  }
}

const TREE = {
  'migrations/001_init.sql': 'create table t (id int);\n',
  'migrations/002_more.sql': 'alter table t add column name text;\n',
  'migrations/archive/000_old.sql': 'select 1;\n',
  'migrations/README.md': 'notes\n',
  'migrations/.draft.sql': 'drop table t;\n',
  'seed/users.sql': "insert into t values (1, 'a');\n",
  'seed/users.json': '[]\n',
  'node_modules/dep/schema.sql': 'select 2;\n',
  '.cache/x.sql': 'select 3;\n',
};

before(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'fxb-js-hash-'));
  write(root, TREE);
});

after(() => fs.rmSync(root, { recursive: true, force: true }));

function rel(globs, cwd = root) {
  return matchFiles(globs, { cwd }).map((f) => path.relative(cwd, f));
}

describe('glob', () => {
  test('** crosses directories but not dot names or node_modules; results are sorted', () => {
    assert.deepEqual(rel('**/*.sql'), [
      'migrations/001_init.sql',
      'migrations/002_more.sql',
      'migrations/archive/000_old.sql',
      'seed/users.sql',
    ]);
  });

  test('* stays within one directory', () => {
    assert.deepEqual(rel('migrations/*.sql'), ['migrations/001_init.sql', 'migrations/002_more.sql']);
  });

  test('a dot name or node_modules is matched when the pattern names it', () => {
    assert.deepEqual(rel('migrations/.*.sql'), ['migrations/.draft.sql']);
    assert.deepEqual(rel('node_modules/**/*.sql'), ['node_modules/dep/schema.sql']);
    assert.deepEqual(rel('.cache/*.sql'), ['.cache/x.sql']);
  });

  test('braces, classes, ? and ! exclusions', () => {
    assert.deepEqual(rel('seed/users.{sql,json}'), ['seed/users.json', 'seed/users.sql']);
    assert.deepEqual(rel('migrations/00[2-9]_*.sql'), ['migrations/002_more.sql']);
    assert.deepEqual(rel('migrations/00?_init.sql'), ['migrations/001_init.sql']);
    assert.deepEqual(rel(['**/*.sql', '!**/archive/**', '!seed/*']),
      ['migrations/001_init.sql', 'migrations/002_more.sql']);
  });

  test('a literal path matches that file only if it exists', () => {
    assert.deepEqual(rel('seed/users.sql'), ['seed/users.sql']);
    assert.deepEqual(rel('seed/nope.sql'), []);
  });
});

describe('hashFiles', () => {
  test('is a sha256 hex digest, the same for the same tree in another place', async () => {
    const h = await hashFiles(['migrations/**/*.sql', 'seed/*.sql'], { cwd: root });
    assert.match(h, /^[0-9a-f]{64}$/);
    const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'fxb-js-hash-copy-'));
    try {
      write(copy, TREE);
      assert.equal(await hashFiles(['seed/*.sql', 'migrations/**/*.sql'], { cwd: copy }), h);
    } finally {
      fs.rmSync(copy, { recursive: true, force: true });
    }
  });

  test('changes when a file\'s content, name or the set of files changes, not otherwise', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fxb-js-hash-edit-'));
    try {
      write(dir, { 'm/1.sql': 'a', 'm/2.sql': 'b' });
      const base = await hashFiles('m/*.sql', { cwd: dir });
      write(dir, { 'm/notes.txt': 'not matched' });
      assert.equal(await hashFiles('m/*.sql', { cwd: dir }), base);
      write(dir, { 'm/2.sql': 'c' });
      const edited = await hashFiles('m/*.sql', { cwd: dir });
      assert.notEqual(edited, base);
      fs.renameSync(path.join(dir, 'm/2.sql'), path.join(dir, 'm/3.sql'));
      const renamed = await hashFiles('m/*.sql', { cwd: dir });
      assert.notEqual(renamed, edited);
      write(dir, { 'm/4.sql': '' });
      assert.notEqual(await hashFiles('m/*.sql', { cwd: dir }), renamed);
      /* Moving bytes from one file to the next is a change too. */
      write(dir, { 'x/1.sql': 'ab', 'x/2.sql': 'c' });
      const a = await hashFiles('x/*.sql', { cwd: dir });
      write(dir, { 'x/1.sql': 'a', 'x/2.sql': 'bc' });
      assert.notEqual(await hashFiles('x/*.sql', { cwd: dir }), a);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('rejects with INVALID_ARGUMENT when nothing matches, unless allowEmpty', async () => {
    await assert.rejects(hashFiles('nothing/*.sql', { cwd: root }), { errorName: 'INVALID_ARGUMENT' });
    assert.match(await hashFiles('nothing/*.sql', { cwd: root, allowEmpty: true }), /^[0-9a-f]{64}$/);
  });
});
