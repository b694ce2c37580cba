// match.mjs: the matching rules of protocol/vectors/README.md: "*" wildcards, exact keys unless "*": "*", same JSON types.

function kind(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

/** Returns null when `actual` matches `expected`, else a description of the first difference. */
export function match(expected, actual, where = '$') {
  if (expected === '*') return actual === undefined ? `${where}: missing` : null;
  if (actual === undefined) return `${where}: missing`;
  if (kind(expected) !== kind(actual)) {
    return `${where}: expected ${kind(expected)} ${JSON.stringify(expected)}, got ${kind(actual)} ${JSON.stringify(actual)}`;
  }
  if (Array.isArray(expected)) {
    if (expected.length !== actual.length) {
      return `${where}: expected ${expected.length} elements, got ${actual.length}: ${JSON.stringify(actual)}`;
    }
    for (let i = 0; i < expected.length; i++) {
      const r = match(expected[i], actual[i], `${where}[${i}]`);
      if (r) return r;
    }
    return null;
  }
  if (kind(expected) === 'object') {
    const open = expected['*'] === '*';
    for (const key of Object.keys(expected)) {
      if (open && key === '*') continue;
      if (!Object.prototype.hasOwnProperty.call(actual, key)) return `${where}.${key}: missing`;
      const r = match(expected[key], actual[key], `${where}.${key}`);
      if (r) return r;
    }
    if (!open) {
      for (const key of Object.keys(actual)) {
        if (!Object.prototype.hasOwnProperty.call(expected, key)) {
          return `${where}.${key}: not expected (${JSON.stringify(actual[key])})`;
        }
      }
    }
    return null;
  }
  return expected === actual ? null
    : `${where}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`;
}
