// reads-fixtures.cjs: a setupFiles module that reads the fixtures too early (env.test.mjs expects the error).
'use strict';

process.env.TOO_EARLY = fixtures.db.url;
