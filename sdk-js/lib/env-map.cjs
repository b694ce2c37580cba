// env-map.cjs: the `env` option: environment variables an env-configured app reads, from the leased fixtures' fields.
//
//   env: { DATABASE_URL: 'db.url', PORT: 'http.port', 'DB_*': 'db', 'PG*': 'db' }
//
// A value 'name.field' is that fixture's field. A key ending in '*' takes a whole fixture
// and sets the prefix followed by HOST and PORT, and for a postgres fixture USER, PASSWORD,
// NAME (the database) and URL; the prefix 'PG' gives libpq's own names instead (PGHOST,
// PGPORT, PGUSER, PGPASSWORD, PGDATABASE), which node-postgres reads too.
'use strict';

const { FixtureBrokerError } = require('./errors.cjs');

const PG_NAMES = { host: 'PGHOST', port: 'PGPORT', user: 'PGUSER', password: 'PGPASSWORD',
  database: 'PGDATABASE' };
const PREFIX_NAMES = { host: 'HOST', port: 'PORT', user: 'USER', password: 'PASSWORD',
  database: 'NAME', url: 'URL' };

function invalid(message) {
  return FixtureBrokerError.client('INVALID_ARGUMENT', `env: ${message}`, {});
}

/** Checks the option's shape (before anything is leased); returns the fixture names it reads. */
function envFixtureNames(mapping) {
  if (mapping === undefined) return [];
  if (!mapping || typeof mapping !== 'object' || Array.isArray(mapping)) {
    throw invalid('must be an object of VARIABLE -> "fixture.field" (or "PREFIX_*" -> "fixture")');
  }
  const names = [];
  for (const [key, value] of Object.entries(mapping)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*\*?$/.test(key)) throw invalid(`"${key}" is not a variable name`);
    if (typeof value !== 'string' || !value) throw invalid(`${key}: a string, please`);
    if (key.endsWith('*')) {
      if (value.includes('.')) throw invalid(`${key}: name a whole fixture ("db"), not a field`);
      names.push(value);
    } else {
      const dot = value.indexOf('.');
      if (dot <= 0 || dot === value.length - 1) {
        throw invalid(`${key}: "${value}" is not "fixture.field" (e.g. "db.url")`);
      }
      names.push(value.slice(0, dot));
    }
  }
  return names;
}

/** The variables of `mapping` given the leased `fixtures` (name -> fields); throws naming what is missing. */
function resolveEnv(mapping, fixtures) {
  envFixtureNames(mapping);
  const out = {};
  const fixture = (key, name) => {
    const f = fixtures[name];
    if (!f) {
      throw invalid(`${key}: no fixture "${name}" (this file has: ${Object.keys(fixtures).join(', ') || 'none'})`);
    }
    return f;
  };
  for (const [key, value] of Object.entries(mapping || {})) {
    if (key.endsWith('*')) {
      const prefix = key.slice(0, -1);
      const f = fixture(key, value);
      const names = prefix === 'PG' ? PG_NAMES : PREFIX_NAMES;
      for (const [field, suffix] of Object.entries(names)) {
        if (f[field] === undefined || f[field] === null) continue;
        out[prefix === 'PG' ? suffix : `${prefix}${suffix}`] = String(f[field]);
      }
    } else {
      const dot = value.indexOf('.');
      const f = fixture(key, value.slice(0, dot));
      const field = value.slice(dot + 1);
      if (f[field] === undefined || f[field] === null) {
        throw invalid(`${key}: fixture "${value.slice(0, dot)}" has no field "${field}" ` +
          `(it has: ${Object.keys(f).filter((k) => f[k] !== null).join(', ')})`);
      }
      out[key] = String(f[field]);
    }
  }
  return out;
}

/** The names `mapping` sets, as far as they are known before the lease (for early-read guards). */
function envNames(mapping) {
  const names = [];
  for (const [key] of Object.entries(mapping || {})) {
    if (!key.endsWith('*')) names.push(key);
  }
  return names;
}

module.exports = { resolveEnv, envFixtureNames, envNames };
