// fixture-scope.cjs: a test file's fixtures for the Jest environment and the Vitest setup file.
//
// What a file needs comes from the runner's options and from an `@fixtures` pragma in the
// file's first docblock (README.md, "The @fixtures pragma"). Fixtures are scoped like this:
//
// - postgres fixtures are worker-scoped: leased once per worker (one lease each, kept in this
//   module for the life of the process) and `lease.reset` for every later file, so each file
//   starts on a fresh clone without a new lease;
// - every other fixture (ports, servers) is file-scoped: one lease for the file, released when
//   the file ends.
//
// A worker's leases end with its connection: the broker reclaims them after its grace period
// when the worker process exits. Templates named in the options are built (or waited for)
// once per worker before the first fixture that uses them.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { pathToFileURL } = require('node:url');
const { FixtureBrokerError } = require('./errors.cjs');
const { hashFiles } = require('./hash-files.cjs');

const WORKER_SCOPED_KINDS = new Set(['postgres']);

/* Worker-scoped leases: key (fixture name + its spec) -> Lease. */
const workerLeases = new Map();
/* Broker URL and template name -> promise of its hash, once ensured. */
const templateHashes = new Map();

function invalid(message) {
  return FixtureBrokerError.client('INVALID_ARGUMENT', message);
}

/**
 * Parses `@fixtures` pragma values (a string, or a list when the pragma repeats) into a
 * fixtures object. A value is either JSON (`{"api": {"kind": "server", "template": "api"}}`)
 * or a short list of `name:kind` or `name:kind/template` entries, separated by spaces or
 * commas (`http:port, db:postgres/app`).
 */
function parseFixturesPragma(value, where = '@fixtures') {
  const values = Array.isArray(value) ? value : value === undefined ? [] : [value];
  const out = {};
  for (const raw of values) {
    const text = String(raw).trim();
    if (!text) continue;
    if (text.startsWith('{')) {
      let parsed;
      try {
        parsed = JSON.parse(text);
      } catch (err) {
        throw invalid(`${where}: not valid JSON (${err.message}): ${text}`);
      }
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
        throw invalid(`${where}: expected a JSON object of fixtures: ${text}`);
      }
      Object.assign(out, parsed);
      continue;
    }
    for (const entry of text.split(/[\s,]+/).filter(Boolean)) {
      const m = /^([A-Za-z0-9_.-]+):([A-Za-z0-9_.-]+)(?:\/(\S+))?$/.exec(entry);
      if (!m) {
        throw invalid(`${where}: "${entry}" is neither name:kind nor name:kind/template ` +
          '(or use a JSON object)');
      }
      out[m[1]] = m[3] ? { kind: m[2], template: m[3] } : { kind: m[2] };
    }
  }
  return out;
}

/**
 * Reads the pragmas of a source file's docblock (a comment that opens the file), as Jest
 * does with jest-docblock: `@name value` lines, continuation lines joined with a space, a
 * repeated pragma as a list.
 */
function readDocblockPragmas(source) {
  const m = /^\s*(\/\*\*?[\s\S]*?\*\/)/.exec(source);
  if (!m) return {};
  const lines = m[1].replace(/^\/\*\*?/, '').replace(/\*\/$/, '').split('\n')
    .map((l) => l.replace(/^\s*\*?\s?/, '').trimEnd());
  const pragmas = {};
  let current = null;
  const push = () => {
    if (!current) return;
    const [name, value] = current;
    if (pragmas[name] === undefined) pragmas[name] = value;
    else pragmas[name] = [].concat(pragmas[name], value);
    current = null;
  };
  for (const line of lines) {
    const p = /^@([\w-]+)\s*(.*)$/.exec(line.trim());
    if (p) {
      push();
      current = [p[1], p[2].trim()];
    } else if (current && line.trim()) {
      current[1] = `${current[1]} ${line.trim()}`.trim();
    } else {
      push();
    }
  }
  push();
  return pragmas;
}

function stableStringify(v) {
  if (Array.isArray(v)) return `[${v.map(stableStringify).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${stableStringify(v[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

async function loadBuild(build, rootDir) {
  if (typeof build === 'function') return build;
  const abs = path.resolve(rootDir, build);
  const mod = await import(pathToFileURL(abs).href);
  const fn = typeof mod.default === 'function' ? mod.default
    : mod.default && typeof mod.default.default === 'function' ? mod.default.default
      : typeof mod.build === 'function' ? mod.build : null;
  if (!fn) throw invalid(`template build module ${abs} exports no function`);
  return fn;
}

/**
 * Ensures a template named in the options, once per worker: hashes its files (and its build
 * module), then `client.ensureTemplate`. Resolves to the hash, which replaces the name in
 * fixture requests.
 */
function ensureNamedTemplate(client, name, def, rootDir) {
  const key = `${client.url}\0${name}`;
  if (!templateHashes.has(key)) {
    const p = (async () => {
      if (!def || !def.files) throw invalid(`template "${name}" has no files to hash`);
      const files = [].concat(def.files);
      if (typeof def.build === 'string') files.push(path.resolve(rootDir, def.build));
      const hash = await hashFiles(files, { cwd: rootDir });
      const build = await loadBuild(def.build, rootDir);
      await client.ensureTemplate(hash, build, { waitMs: def.waitMs });
      return hash;
    })();
    templateHashes.set(key, p);
    p.catch(() => templateHashes.delete(key));
  }
  return templateHashes.get(key);
}

/**
 * Leases a file's fixtures. Options: `waitMs` (how long a short pool may queue the
 * acquire), `ttlMs`, `labels`, `templates` (name -> {files, build, waitMs}), `rootDir`
 * (where template files and build modules are found). Resolves to
 * `{fixtures, lease, release()}`: `fixtures` maps each name to its fields as plain values;
 * `release()` releases the file-scoped lease (worker-scoped ones stay).
 */
async function leaseFixtures(client, specs, options = {}) {
  const { waitMs, ttlMs, labels, templates = {}, rootDir = process.cwd() } = options;
  const fileSpecs = {};
  const workerSpecs = {};
  for (const [name, raw] of Object.entries(specs || {})) {
    let spec = typeof raw === 'string' ? { kind: raw } : { ...raw };
    if (!spec || typeof spec.kind !== 'string') {
      throw invalid(`fixture "${name}" needs a kind: ${JSON.stringify(raw)}`);
    }
    if (typeof spec.template === 'string' &&
        Object.prototype.hasOwnProperty.call(templates, spec.template)) {
      spec = { ...spec, template: await ensureNamedTemplate(client, spec.template,
        templates[spec.template], rootDir) };
    }
    (WORKER_SCOPED_KINDS.has(spec.kind) ? workerSpecs : fileSpecs)[name] = spec;
  }

  const fixtures = {};
  for (const [name, spec] of Object.entries(workerSpecs)) {
    const key = `${name}\0${client.url}\0${stableStringify(spec)}`;
    let lease = workerLeases.get(key);
    let fields = null;
    if (lease && !lease.released && lease.client === client && !client.closed) {
      try {
        fields = await lease.reset(name);
      } catch (err) {
        if (!(err instanceof FixtureBrokerError) ||
            !['LEASE_NOT_FOUND', 'LEASE_NOT_OWNED', 'CONNECTION_LOST'].includes(err.errorName)) {
          throw err;
        }
        workerLeases.delete(key);
      }
    }
    if (!fields) {
      lease = await client.acquire({ fixtures: { [name]: spec }, waitMs, labels });
      workerLeases.set(key, lease);
      fields = lease.fixtures[name];
    }
    fixtures[name] = fields;
  }

  let lease = null;
  if (Object.keys(fileSpecs).length) {
    lease = await client.acquire({ fixtures: fileSpecs, waitMs, ttlMs, labels });
    Object.assign(fixtures, lease.fixtures);
  }
  return {
    fixtures,
    lease,
    release: async () => (lease ? lease.release() : false),
  };
}

/** The pragmas of a test file on disk ({} when it cannot be read). */
function readFilePragmas(file) {
  try {
    return readDocblockPragmas(fs.readFileSync(file, 'utf8'));
  } catch {
    return {};
  }
}

module.exports = {
  leaseFixtures,
  parseFixturesPragma,
  readDocblockPragmas,
  readFilePragmas,
  WORKER_SCOPED_KINDS,
};
