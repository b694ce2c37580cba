// index.d.mts: the declarations of the ES-module entry (index.mjs): the named exports of index.d.ts,
// and a default export that is the CommonJS module object itself, as index.mjs's is.
import type { FixtureBrokerModule } from './index.js';

export * from './index.js';

declare const fixtureBroker: FixtureBrokerModule;
export default fixtureBroker;
