// lives.test.cjs: a file that runs beside the dying one, so that Jest uses workers rather than its own process.
'use strict';

test('a leased port is here', () => {
  expect(globalThis.fixtures.http.port).toEqual(expect.any(Number));
});
