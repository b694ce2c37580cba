// a.test.cjs: a port and a database of this file's own.
'use strict';

const checkFixtures = require('../shared/check.cjs');

test('a: its fixtures', async () => {
  expect(await checkFixtures(fixtures, 'a')).toEqual(['a']);
});
