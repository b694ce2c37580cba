/**
 * pg.test.mjs: records the broker and the PostgreSQL cluster this Vitest run was given.
 *
 * @fixtures db:postgres
 */
import { expect, test } from 'vitest';
import record from './record.cjs';

test('a database of the warm broker', async () => {
  const line = await record('vitest', globalThis.fixtures.db.url);
  expect(line.pgStart).toMatch(/^\d{4}-/);
});
