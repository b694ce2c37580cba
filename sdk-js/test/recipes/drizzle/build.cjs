// drizzle/build.cjs: the drizzle recipe: `drizzle-kit push` of the schema (no migration files), then a seed row.
'use strict';

const path = require('node:path');
const { execFile } = require('node:child_process');
const { promisify } = require('node:util');
const { drizzle } = require('drizzle-orm/node-postgres');
const { authors, books } = require('./schema.cjs');

/* The package's command (its exports map does not export bin.cjs). */
const DRIZZLE_KIT = path.join(path.dirname(require.resolve('drizzle-kit')), 'bin.cjs');

module.exports = async function buildWithDrizzleKitPush(url) {
  await promisify(execFile)(process.execPath, [DRIZZLE_KIT, 'push',
    '--dialect=postgresql', `--schema=${path.join(__dirname, 'schema.cjs')}`, `--url=${url}`, '--force'],
  { cwd: __dirname, timeout: 60000 });
  const db = drizzle(url);
  try {
    const [author] = await db.insert(authors).values({ name: 'Ursula K. Le Guin' }).returning();
    await db.insert(books).values({ authorId: author.id, title: 'The Dispossessed' });
  } finally {
    await db.$client.end();
  }
};
