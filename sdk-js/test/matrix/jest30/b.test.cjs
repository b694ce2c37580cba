// b.test.cjs: a port and a database of this file's own.
'use strict';

const checkFixtures = require('../shared/check.cjs');

test('b: its fixtures', async () => {
  expect(await checkFixtures(fixtures, 'b')).toEqual(['b']);
});
