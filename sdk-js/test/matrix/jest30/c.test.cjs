// c.test.cjs: a port and a database of this file's own.
'use strict';

const checkFixtures = require('../shared/check.cjs');

test('c: its fixtures', async () => {
  expect(await checkFixtures(fixtures, 'c')).toEqual(['c']);
});
