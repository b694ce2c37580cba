// d.test.mjs: worker-scoped fixtures through test.extend (fixture-broker/vitest/fixtures).
import { expect } from 'vitest';
import { test } from './fixtures.mjs';

test('d: the worker\'s port and database', async ({ http, db, fixtureLease }) => {
  expect(http.port).toBe(fixtureLease.fixtures.http.port);
  expect(db.url).toMatch(/^postgres/);
  expect(fixtureLease.id).toMatch(/^l-/);
});
