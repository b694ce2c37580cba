/**
 * pg.test.cjs: records the broker and the PostgreSQL cluster this run was given.
 *
 * @fixtures db:postgres
 */
'use strict';

const record = require('./record.cjs');

test('a database of the warm broker', async () => {
  const line = await record('jest', fixtures.db.url);
  expect(line.pgStart).toMatch(/^\d{4}-/);
});
