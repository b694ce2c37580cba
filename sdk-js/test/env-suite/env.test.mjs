// env.test.mjs: with Vitest, an app that reads its environment when imported is imported in beforeAll.
import { beforeAll, expect, test } from 'vitest';

let app;
beforeAll(async () => {
  ({ default: app } = await import('./app.cjs'));
});

test('the app sees DATABASE_URL, PORT and DB_*, and its database answers', async () => {
  expect(app.config.databaseUrl).toBe(globalThis.fixtures.db.url);
  expect(app.config.port).toBe(globalThis.fixtures.http.port);
  expect(await app.query('SELECT current_database() AS db')).toEqual([{ db: globalThis.fixtures.db.database }]);
});
