// migrate.js: applies migrations/*.sql in name order, then seed.sql, to the database at a URL (argument or DATABASE_URL).
//
// Each migration runs in its own transaction and is recorded in schema_migrations, so a
// second run applies only what is new. The broker runs it to build the "app" template
// (fixture-broker.json: `node scripts/migrate.js {url}`); the "before" suite runs it with
// --no-seed on its shared database and seeds every test file itself. As a module, its export
// is `migrate(url, { seed })`, usable as a template build for `client.ensureTemplate` and
// Jest's `templates` option (README.md, "Who builds the template").
//
//   node scripts/migrate.js [--no-seed] [URL]
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { Client } = require('pg');

const ROOT = path.resolve(__dirname, '..');
const MIGRATIONS = path.join(ROOT, 'migrations');
const SEED = path.join(ROOT, 'seed.sql');

/** The migration files, in the order they apply. */
function migrationFiles() {
  return fs.readdirSync(MIGRATIONS).filter((f) => f.endsWith('.sql')).sort();
}

/**
 * Migrates (and by default seeds) the database at `url`. Resolves to the names of the
 * migrations it applied; rejects with the failing file's name in the message, after rolling
 * that file back.
 */
async function migrate(url, { seed = true, log = () => {} } = {}) {
  if (!url) throw new Error('migrate: no database URL (pass one, or set DATABASE_URL)');
  const client = new Client({ connectionString: url, application_name: 'migrate' });
  await client.connect();
  const applied = [];
  try {
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`);
    const done = new Set((await client.query('SELECT name FROM schema_migrations')).rows
      .map((r) => r.name));
    for (const name of migrationFiles()) {
      if (done.has(name)) continue;
      const sql = fs.readFileSync(path.join(MIGRATIONS, name), 'utf8');
      await runInTransaction(client, name, async () => {
        await client.query(sql);
        await client.query('INSERT INTO schema_migrations (name) VALUES ($1)', [name]);
      });
      applied.push(name);
      log(`applied ${name}`);
    }
    if (seed) {
      await runInTransaction(client, 'seed.sql', () => client.query(fs.readFileSync(SEED, 'utf8')));
      log('seeded seed.sql');
    }
  } finally {
    await client.end();
  }
  return applied;
}

async function runInTransaction(client, name, fn) {
  await client.query('BEGIN');
  try {
    await fn();
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    err.message = `${name}: ${err.message}`;
    throw err;
  }
}

module.exports = migrate;
module.exports.migrate = migrate;
module.exports.migrationFiles = migrationFiles;

if (require.main === module) {
  const args = process.argv.slice(2);
  const seed = !args.includes('--no-seed');
  const url = args.find((a) => !a.startsWith('--')) || process.env.DATABASE_URL;
  migrate(url, { seed, log: (line) => console.log(`migrate: ${line}`) }).catch((err) => {
    console.error(`migrate: ${err.message}`);
    process.exit(1);
  });
}
