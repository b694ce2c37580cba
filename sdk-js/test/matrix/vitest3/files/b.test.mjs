// b.test.mjs: the setup file's per-file fixtures.
import { expect, test } from 'vitest';
import checkFixtures from '../../shared/check.cjs';

test('b: its fixtures', async () => {
  expect(await checkFixtures(globalThis.fixtures, 'b')).toEqual(['b']);
});
