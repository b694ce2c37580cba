// index.mjs: the ES-module entry of fixture-broker, a re-export of the one CommonJS implementation.
import cjs from './index.cjs';

export const {
  connect,
  Client,
  Lease,
  FixtureBrokerError,
  CLIENT_ERRORS,
  hashFiles,
  matchFiles,
  parseFixturesPragma,
  DEFAULT_URL,
  SUBPROTOCOL,
} = cjs;

export default cjs;
