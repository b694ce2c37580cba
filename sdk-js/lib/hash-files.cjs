// hash-files.cjs: hashFiles(globs), a stable sha256 over migration and seed files, with a small glob.
//
// The hash keys a PostgreSQL template (client.ensureTemplate): it changes exactly when a
// matching file's path or content changes, and it is the same on every machine and in every
// checkout, so paths are hashed relative to `cwd`, with '/' separators, in sorted order.
//
// Glob syntax: `*` and `?` within one path segment, `[abc]`/`[a-z]`/`[!a]` classes, `{a,b}`
// alternatives, `**` for any number of directories, a leading `!` to exclude. As in shells,
// wildcards do not match names that start with a dot unless the pattern's segment does, and
// `**` does not walk into `node_modules` (name it literally to include it).
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const { FixtureBrokerError } = require('./errors.cjs');

/** Expands `{a,b}` alternatives (nested too) into a list of brace-free patterns. */
function expandBraces(pattern) {
  let depth = 0;
  let open = -1;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\') {
      i++;
    } else if (c === '{') {
      if (depth++ === 0) open = i;
    } else if (c === '}' && depth > 0 && --depth === 0) {
      const inner = pattern.slice(open + 1, i);
      const alternatives = [];
      let d = 0;
      let start = 0;
      for (let j = 0; j < inner.length; j++) {
        const ch = inner[j];
        if (ch === '\\') j++;
        else if (ch === '{') d++;
        else if (ch === '}') d--;
        else if (ch === ',' && d === 0) {
          alternatives.push(inner.slice(start, j));
          start = j + 1;
        }
      }
      alternatives.push(inner.slice(start));
      if (alternatives.length < 2) continue;
      const head = pattern.slice(0, open);
      const tail = pattern.slice(i + 1);
      return alternatives.flatMap((alt) => expandBraces(head + alt + tail));
    }
  }
  return [pattern];
}

function hasMagic(segment) {
  return /[*?[\\]/.test(segment);
}

/** Compiles one path segment's pattern (no '/') to a RegExp. */
function segmentRegExp(segment) {
  let re = '';
  for (let i = 0; i < segment.length; i++) {
    const c = segment[i];
    if (c === '\\' && i + 1 < segment.length) {
      re += segment[++i].replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
    } else if (c === '*') {
      re += '[^/]*';
    } else if (c === '?') {
      re += '[^/]';
    } else if (c === '[') {
      const end = segment.indexOf(']', i + 2);
      if (end < 0) {
        re += '\\[';
        continue;
      }
      let body = segment.slice(i + 1, end);
      let negate = false;
      if (body[0] === '!' || body[0] === '^') {
        negate = true;
        body = body.slice(1);
      }
      body = body.replace(/[\\\]^]/g, '\\$&');
      re += negate ? `[^/${body}]` : `[${body}]`;
      i = end;
    } else {
      re += c.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
    }
  }
  /* A wildcard at the start of a segment does not match a leading dot. */
  const explicitDot = segment.startsWith('.') || segment.startsWith('\\.');
  return new RegExp(`^${explicitDot ? '' : '(?!\\.)'}${re}$`);
}

/** Compiles a brace-free pattern to a list of segment matchers ('**' or a RegExp). */
function compile(pattern) {
  return pattern.split('/').map((s) => (s === '**' ? '**' : segmentRegExp(s)));
}

/** True when the path's segments match the compiled pattern's. */
function matchSegments(parts, pi, segs, si) {
  while (si < segs.length) {
    const seg = segs[si];
    if (seg === '**') {
      for (let k = pi; k <= parts.length; k++) {
        if (k > pi) {
          const name = parts[k - 1];
          if (name.startsWith('.') || name === 'node_modules') return false;
        }
        if (matchSegments(parts, k, segs, si + 1)) return true;
      }
      return false;
    }
    if (pi >= parts.length || !seg.test(parts[pi])) return false;
    pi++;
    si++;
  }
  return pi === parts.length;
}

/** Splits an absolute, brace-free pattern into its literal leading directory and the rest. */
function splitBase(absPattern) {
  const segs = absPattern.split('/').slice(1);
  const literal = [];
  while (segs.length > 1 && !hasMagic(segs[0]) && segs[0] !== '**') literal.push(segs.shift());
  return { base: `/${literal.join('/')}`, rest: segs.join('/') };
}

function walk(dir, rel, out, allowNodeModules, allowDotDirs) {
  let entries;
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return;
    throw err;
  }
  for (const e of entries) {
    const childRel = rel ? `${rel}/${e.name}` : e.name;
    const abs = path.join(dir, e.name);
    let isDir = e.isDirectory();
    let isFile = e.isFile();
    if (e.isSymbolicLink()) {
      try {
        const st = fs.statSync(abs);
        isDir = st.isDirectory();
        isFile = st.isFile();
      } catch {
        continue;
      }
    }
    if (isDir) {
      if (e.name === 'node_modules' && !allowNodeModules) continue;
      if (e.name.startsWith('.') && !allowDotDirs) continue;
      walk(abs, childRel, out, allowNodeModules, allowDotDirs);
    } else if (isFile) {
      out.push(childRel);
    }
  }
}

/**
 * The files matching `globs` (a pattern or a list; `!pattern` excludes), as absolute paths,
 * sorted by their path relative to `cwd`.
 */
function matchFiles(globs, { cwd = process.cwd() } = {}) {
  const list = Array.isArray(globs) ? globs : [globs];
  const included = new Map();
  const excludes = [];
  for (const raw of list) {
    if (typeof raw !== 'string' || raw === '') {
      throw FixtureBrokerError.client('INVALID_ARGUMENT', `hashFiles: bad pattern ${JSON.stringify(raw)}`);
    }
    const negate = raw.startsWith('!');
    const glob = negate ? raw.slice(1) : raw;
    for (const pattern of expandBraces(glob)) {
      const absPattern = path.resolve(cwd, pattern).split(path.sep).join('/');
      if (negate) {
        excludes.push(compile(absPattern.replace(/^\/+/, '')));
        continue;
      }
      const { base, rest } = splitBase(absPattern);
      const segs = compile(rest);
      const files = [];
      if (!rest.includes('/') && !hasMagic(rest) && rest !== '**') {
        const abs = path.join(base, rest);
        try {
          if (fs.statSync(abs).isFile()) files.push(rest);
        } catch {
          /* a literal path that does not exist matches nothing */
        }
      } else {
        walk(base, '', files, /(^|\/)node_modules(\/|$)/.test(rest), /(^|\/)\.[^/]*\//.test(rest));
      }
      for (const f of files) {
        if (matchSegments(f.split('/'), 0, segs, 0)) {
          const abs = path.join(base, f);
          included.set(abs, true);
        }
      }
    }
  }
  const result = [];
  for (const abs of included.keys()) {
    const parts = abs.split(path.sep).join('/').replace(/^\/+/, '').split('/');
    if (excludes.some((segs) => matchSegments(parts, 0, segs, 0))) continue;
    result.push(abs);
  }
  const rel = (abs) => path.relative(cwd, abs).split(path.sep).join('/');
  return result.sort((a, b) => (rel(a) < rel(b) ? -1 : rel(a) > rel(b) ? 1 : 0));
}

/**
 * Resolves to the sha256 (hex) of the files matching `globs`: for each, in sorted order, its
 * path relative to `cwd`, its size and its bytes. Throws INVALID_ARGUMENT when nothing
 * matches (a wrong `cwd` is the usual cause), unless `allowEmpty`.
 */
async function hashFiles(globs, { cwd = process.cwd(), allowEmpty = false } = {}) {
  const files = matchFiles(globs, { cwd });
  if (!files.length && !allowEmpty) {
    throw FixtureBrokerError.client('INVALID_ARGUMENT',
      `hashFiles: no file matches ${JSON.stringify(globs)} in ${cwd}`);
  }
  const h = crypto.createHash('sha256');
  for (const abs of files) {
    const body = await fs.promises.readFile(abs);
    const rel = path.relative(cwd, abs).split(path.sep).join('/');
    h.update(`${rel}\0${body.length}\0`);
    h.update(body);
    h.update('\0');
  }
  return h.digest('hex');
}

module.exports = { hashFiles, matchFiles, expandBraces, segmentRegExp };
