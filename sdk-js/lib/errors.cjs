// errors.cjs: FixtureBrokerError, the one error class of the fixture-broker client.
//
// The broker's errors carry a numeric JSON-RPC code and a stable name in `data.name`
// (protocol/README.md); callers branch on those, never on the message. Failures that happen
// on the client's side (no connection, no reply in time, a client that is closing) use the
// same class with small negative codes, the same numbers as the C SDK's FXB_E* values, so a
// test can tell "the broker said no" from "the broker never answered".
'use strict';

/** Client-side error codes and names (the broker's own are in protocol/openrpc.json). */
const CLIENT_ERRORS = Object.freeze({
  INVALID_ARGUMENT: -1,
  CONNECT_FAILED: -3,
  CONNECTION_LOST: -3,
  TIMEOUT: -4,
  PROTOCOL_ERROR: -6,
  CLIENT_CLOSED: -7,
  SESSION_LOST: -9,
  ABORTED: -10,
});

/**
 * Renders a server's log tail as the broker sent it (a string, an array of lines, or an
 * object with stdout and stderr) as text, or returns '' when there is none.
 */
function formatLogTail(tail) {
  if (tail == null) return '';
  if (typeof tail === 'string') return tail.replace(/\s+$/, '');
  if (Array.isArray(tail)) return tail.map(String).join('\n').replace(/\s+$/, '');
  if (typeof tail === 'object') {
    const parts = [];
    for (const [stream, text] of Object.entries(tail)) {
      const body = formatLogTail(text);
      if (body) parts.push(`[${stream}]\n${body}`);
    }
    return parts.join('\n');
  }
  return String(tail);
}

class FixtureBrokerError extends Error {
  /**
   * @param {string} message the broker's message (or the client's, for client-side errors)
   * @param {object} [options]
   * @param {number} [options.code] the numeric code
   * @param {string} [options.errorName] the stable symbolic name ("PORTS_EXHAUSTED")
   * @param {*} [options.data] the error's `data` as the broker sent it
   * @param {string} [options.method] the method whose call failed
   * @param {*} [options.cause] an underlying error
   */
  constructor(message, options = {}) {
    const tail = formatLogTail(options.data && options.data.log_tail);
    super(tail ? `${message}\n--- log tail ---\n${tail}` : message,
      options.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'FixtureBrokerError';
    this.code = options.code;
    this.errorName = options.errorName;
    this.data = options.data;
    this.method = options.method;
  }

  /** True when the broker sent this error, false when the client raised it. */
  get fromBroker() {
    return !Object.prototype.hasOwnProperty.call(CLIENT_ERRORS, this.errorName);
  }

  /** Builds the error for a JSON-RPC error object the broker sent in reply to `method`. */
  static fromRpc(error, method) {
    const e = error && typeof error === 'object' ? error : {};
    const data = e.data;
    const errorName = data && typeof data.name === 'string' ? data.name : 'UNKNOWN_ERROR';
    const message = typeof e.message === 'string' ? e.message : `${method}: broker error`;
    return new FixtureBrokerError(message, {
      code: typeof e.code === 'number' ? e.code : undefined,
      errorName,
      data,
      method,
    });
  }

  /** Builds a client-side error; `errorName` is one of CLIENT_ERRORS' keys. */
  static client(errorName, message, extra = {}) {
    return new FixtureBrokerError(message, {
      code: CLIENT_ERRORS[errorName],
      errorName,
      ...extra,
    });
  }
}

module.exports = { FixtureBrokerError, CLIENT_ERRORS, formatLogTail };
