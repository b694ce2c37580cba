// client.cjs: the fixture-broker client: one WebSocket connection (one broker session), its leases.
//
// A Client owns one connection to the broker at a time and the JSON-RPC calls in flight on
// it; callers get promises. Replies are matched by id, never by order (a waiting acquire is
// answered when it is done). Broker notifications (`server.exited`) become events.
//
// Liveness: the socket is unref'd whenever no call is in flight or waiting, so an idle client
// never keeps Node (or a Jest worker) alive, and ref'd while a call needs it.
//
// Silence: the broker pings every connection every `heartbeat_ms`, so a connection on which
// nothing at all (no message, no ping, no pong) has arrived for the `dead_after_ms` its hello
// announced is dead even if TCP has not noticed (a cable pulled, a host gone, a NAT that
// forgot the flow): the client terminates it and reconnects as after any drop. Halfway there
// it sends a ping of its own, so a broker that pings less often (or not at all) still answers.
//
// When the connection drops, the calls in flight fail at once with CONNECTION_LOST (the
// broker may or may not have acted on them), calls made afterwards wait, and the client
// reconnects with backoff and resumes its session with `session.hello {resume}`: within the
// broker's grace period the session and its leases survive. If the session cannot be
// resumed (the grace period ran out, or another connection took it over), the client opens
// a fresh session, emits `sessionLost`, and its old leases are gone.
'use strict';

const { EventEmitter } = require('node:events');
const fs = require('node:fs');
const net = require('node:net');
const tls = require('node:tls');
const WebSocket = require('ws');
const { FixtureBrokerError } = require('./errors.cjs');

const SUBPROTOCOL = 'fixture-broker.v1';
const DEFAULT_URL = 'ws://127.0.0.1:7357';
const DEFAULT_TIMEOUT_MS = 60000;
const DEFAULT_CONNECT_TIMEOUT_MS = 10000;
const CLOSE_WAIT_MS = 2000;
const RELEASE_ON_CLOSE_MS = 5000;
/* The broker keeps a dropped session for 5 s by default: the first attempts come fast. */
const BACKOFF_MS = [100, 250, 500, 1000, 2000];
/* The broker's close code for a connection whose session another connection resumed. */
const CLOSE_TAKEN_OVER = 4001;
/* The silence after which a connection counts as dead when the broker's hello does not say. */
const DEFAULT_DEAD_AFTER_MS = 15000;

const kAsyncDispose = Symbol.asyncDispose || Symbol.for('nodejs.asyncDispose');

function plain(value) {
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value));
}

function stringLabels(labels) {
  const out = {};
  for (const [k, v] of Object.entries(labels || {})) {
    if (v !== undefined && v !== null) out[k] = String(v);
  }
  return out;
}

/** `{http: 'port'}` is short for `{http: {kind: 'port'}}`; objects are sent as they are. */
function normalizeFixtures(fixtures) {
  if (!fixtures || typeof fixtures !== 'object' || Array.isArray(fixtures)) return fixtures;
  const out = {};
  for (const [name, spec] of Object.entries(fixtures)) {
    out[name] = typeof spec === 'string' ? { kind: spec } : spec;
  }
  return out;
}

/* The TLS options a wss:// connection passes to tls.connect, with the PEM files that
 * $FIXTURE_BROKER_CA, $FIXTURE_BROKER_CERT and $FIXTURE_BROKER_KEY name (as libfxb's
 * tls.ca, tls.cert, tls.key) for those the options do not give. */
const TLS_OPTIONS = ['ca', 'cert', 'key', 'passphrase', 'rejectUnauthorized', 'servername'];
const TLS_ENV = { ca: 'FIXTURE_BROKER_CA', cert: 'FIXTURE_BROKER_CERT', key: 'FIXTURE_BROKER_KEY' };

function tlsOptions(options) {
  const out = {};
  for (const name of TLS_OPTIONS) {
    if (options[name] !== undefined) out[name] = options[name];
  }
  for (const [name, env] of Object.entries(TLS_ENV)) {
    const file = process.env[env];
    if (out[name] !== undefined || !file) continue;
    try {
      out[name] = fs.readFileSync(file);
    } catch (err) {
      throw FixtureBrokerError.client('INVALID_ARGUMENT',
        `cannot read the file $${env} names (${file}): ${err.message}`, { cause: err });
    }
  }
  if ((out.cert === undefined) !== (out.key === undefined)) {
    throw FixtureBrokerError.client('INVALID_ARGUMENT',
      'a client certificate needs its key and the other way round (cert and key)');
  }
  return out;
}

/* Node's codes for a broker certificate that was not accepted. */
function certificateRefused(err) {
  return Boolean(err && typeof err.code === 'string' && !/^ERR_SSL_/.test(err.code) &&
    /CERT|ISSUER|ALTNAME|HOSTNAME|SELF_SIGNED|LEAF|VERIFY/.test(err.code));
}

/* The rejection of a call its AbortSignal gave up on. */
function abortedError(method, signal) {
  const err = FixtureBrokerError.client('ABORTED', `${method}: aborted` +
    (signal.reason && signal.reason.message ? ` (${signal.reason.message})` : ''), { method });
  err.cause = signal.reason;
  return err;
}

/* ws's own connectors, kept so that the client holds the socket it must ref and unref. */
function netConnect(options) {
  options.path = options.socketPath;
  return net.connect(options);
}

function tlsConnect(options) {
  options.path = undefined;
  if (!options.servername && options.servername !== '') {
    options.servername = net.isIP(options.host) ? '' : options.host;
  }
  return tls.connect(options);
}

/**
 * A lease: the fixtures one `lease.acquire` granted, under the caller's names. `fixtures`
 * holds each fixture's fields as plain values (`lease.fixtures.http.port`). Releasing is
 * idempotent; `await using lease = await client.acquire(...)` releases it at scope exit.
 */
class Lease {
  constructor(client, result) {
    this.client = client;
    this.id = result.lease;
    this.fixtures = plain(result.fixtures);
    this.ttlMs = result.ttl_ms === undefined ? null : result.ttl_ms;
    this.released = false;
    /* True once the client knows the lease's session was lost (the broker released it). */
    this.lost = false;
    this._releasing = null;
  }

  _check(method) {
    if (this.lost) {
      throw FixtureBrokerError.client('SESSION_LOST',
        `${method}: lease ${this.id} was lost with its session (the broker released it)`,
        { method });
    }
  }

  /** Releases the lease; resolves to true if this call released it, false if it was gone. */
  release() {
    if (this.released && !this._releasing) return Promise.resolve(false);
    if (!this._releasing) {
      this._releasing = this.client.release(this.id).then(
        (released) => {
          this.released = true;
          this._releasing = null;
          return released;
        },
        (err) => {
          this._releasing = null;
          throw err;
        },
      );
    }
    return this._releasing;
  }

  /**
   * Swaps the named fixture for a fresh one (`lease.reset`, for postgres fixtures: a new
   * clone of the template). Resolves to the fixture's new fields, which also replace
   * `this.fixtures[name]`.
   */
  async reset(name, options = {}) {
    this._check('lease.reset');
    const result = await this.client.call(
      'lease.reset', { lease: this.id, fixture: name }, options);
    let fields;
    if (result && result.fixtures && typeof result.fixtures[name] === 'object') {
      fields = result.fixtures[name];
    } else if (result && result.fixture && typeof result.fixture === 'object') {
      fields = result.fixture;
    } else if (result && typeof result.kind === 'string') {
      fields = result;
    } else {
      throw FixtureBrokerError.client('PROTOCOL_ERROR',
        `lease.reset: the reply has no fields for fixture "${name}"`, { method: 'lease.reset' });
    }
    this.fixtures[name] = plain(fields);
    return this.fixtures[name];
  }

  /**
   * Pushes the lease's expiry to now + ttlMs (or the lease's own TTL without it). Resolves
   * to `{ttlMs, expiresInMs}` as the broker now holds them.
   */
  async renew(ttlMs) {
    this._check('lease.renew');
    const params = { lease: this.id };
    if (ttlMs !== undefined) params.ttl_ms = ttlMs;
    const r = await this.client.call('lease.renew', params);
    this.ttlMs = r.ttl_ms;
    return { ttlMs: r.ttl_ms, expiresInMs: r.expires_in_ms };
  }

  /** The server fixture's captured output: `{stdout, stderr}`. */
  logs(name, options) {
    try {
      this._check('server.logs');
    } catch (err) {
      return Promise.reject(err);
    }
    return this.client.logs(this, name, options);
  }

  toJSON() {
    return { lease: this.id, fixtures: this.fixtures, ttl_ms: this.ttlMs };
  }

  [kAsyncDispose]() {
    return this.release().then(() => undefined);
  }
}

class Client extends EventEmitter {
  /**
   * Use `connect()`, which also opens the connection. Options as `connect()`'s.
   */
  constructor(options = {}) {
    super();
    this.url = options.url || process.env.FIXTURE_BROKER_URL || DEFAULT_URL;
    this._token = options.token !== undefined ? options.token : process.env.FIXTURE_BROKER_TOKEN;
    this._clientName = options.client || 'fixture-broker-js';
    this._labels = stringLabels({ pid: process.pid, ...(options.labels || {}) });
    this._timeoutMs = options.timeoutMs || DEFAULT_TIMEOUT_MS;
    this._connectTimeoutMs = options.connectTimeoutMs || DEFAULT_CONNECT_TIMEOUT_MS;
    this._resume = options.resume || null;
    if (options.deadAfterMs !== undefined && options.deadAfterMs !== null &&
        !(Number.isFinite(options.deadAfterMs) && options.deadAfterMs >= 0)) {
      throw FixtureBrokerError.client('INVALID_ARGUMENT',
        `deadAfterMs must be a number of milliseconds (0: never), not ${options.deadAfterMs}`);
    }
    this._deadAfterOption = options.deadAfterMs === null ? undefined : options.deadAfterMs;
    this._tls = /^wss:/i.test(this.url) ? tlsOptions(options) : {};

    this._ws = null;
    this._sock = null;
    this._state = 'idle'; // idle, connecting, open, reconnecting, closed
    this._nextId = 1;
    this._inflight = new Map();
    this._waiting = [];
    this._opening = false;
    this._retryTimer = null;
    this._attempt = 0;
    this._droppedAt = 0;
    this._lastError = null;
    this._abandoned = new Set();
    this._closePromise = null;
    this._leases = new Map();
    this._lastHeard = 0;
    this._probed = false;
    this._watchTimer = null;
    this._silence = null;

    this.session = null;
    this.resumeToken = null;
    this.broker = null;
    this.limits = null;
    this.hello = null;
  }

  /** True once `close()` was called. */
  get closed() {
    return this._state === 'closed';
  }

  /** True while the client has a live session (not reconnecting, not closed). */
  get connected() {
    return this._state === 'open';
  }

  /**
   * How long the connection may stay silent (no message, no ping) before the client takes
   * it for dead: the `deadAfterMs` option, else the broker's `limits.dead_after_ms`, else
   * 15000. 0: never.
   */
  get deadAfterMs() {
    if (this._deadAfterOption !== undefined) return this._deadAfterOption;
    const announced = this.limits && this.limits.dead_after_ms;
    return Number.isFinite(announced) && announced > 0 ? announced : DEFAULT_DEAD_AFTER_MS;
  }

  async _open() {
    this._state = 'connecting';
    this._opening = true;
    try {
      await this._establish(false);
      if (this._state !== 'connecting') {
        throw FixtureBrokerError.client('CLIENT_CLOSED', 'the client was closed while connecting');
      }
      this._state = 'open';
      this._flushWaiting();
    } catch (err) {
      if (this._state !== 'closed') {
        this._state = 'closed';
        this._dropSocket();
        this._failWaiting(err);
      }
      throw err;
    } finally {
      this._opening = false;
      this._updateRef();
    }
  }

  /* Opens a WebSocket, resolving on 'open'; rejects with CONNECT_FAILED if it closes first. */
  _openSocket() {
    return new Promise((resolve, reject) => {
      let ws;
      try {
        ws = new WebSocket(this.url, SUBPROTOCOL, {
          ...this._tls,
          /* The token goes once, here: the broker checks it before it upgrades. */
          headers: this._token ? { Authorization: `Bearer ${this._token}` } : {},
          handshakeTimeout: this._connectTimeoutMs,
          perMessageDeflate: false,
          createConnection: (options) => {
            const sock = /^wss:/i.test(this.url) ? tlsConnect(options) : netConnect(options);
            if (ws === undefined || this._ws === ws) {
              this._sock = sock;
              this._updateRef();
            }
            return sock;
          },
        });
      } catch (err) {
        reject(FixtureBrokerError.client('CONNECT_FAILED',
          `cannot connect to ${this.url}: ${err.message}`, { cause: err }));
        return;
      }
      this._ws = ws;
      let lastError = null;
      let opened = false;
      let refused = 0;
      ws.on('error', (err) => {
        lastError = err;
      });
      ws.on('unexpected-response', (req, res) => {
        refused = res.statusCode;
        ws.terminate();
      });
      ws.on('open', () => {
        opened = true;
        resolve(ws);
      });
      ws.on('message', (data, isBinary) => {
        if (ws !== this._ws) return;
        this._heard();
        this._onMessage(data, isBinary);
      });
      /* ws answers the broker's pings by itself; here they only count as signs of life. */
      ws.on('ping', () => {
        if (ws === this._ws) this._heard();
      });
      ws.on('pong', () => {
        if (ws === this._ws) this._heard();
      });
      ws.on('close', (code, reason) => {
        if (!opened && refused === 401) {
          /* As the broker's own UNAUTHENTICATED: a wrong token will not mend itself. */
          reject(new FixtureBrokerError(
            `cannot connect to ${this.url}: the broker refused the bearer token (HTTP 401)`,
            { code: 1001, errorName: 'UNAUTHENTICATED' }));
        } else if (!opened) {
          let why = refused ? `the broker answered the upgrade with HTTP ${refused}`
            : lastError ? lastError.message : `closed with ${code}`;
          if (certificateRefused(lastError)) {
            why = `the broker's TLS certificate was not accepted: ${why} (${lastError.code})`;
          }
          reject(FixtureBrokerError.client('CONNECT_FAILED', `cannot connect to ${this.url}: ${why}`,
            { cause: lastError || undefined }));
        }
        this._onClose(ws, code, reason ? reason.toString() : '', lastError);
      });
    });
  }

  /*
   * Connects and says hello; with `reconnecting`, resumes the session. Resolves to
   * `{resumed, lost}`: `lost` when the session could not be resumed and a fresh one began.
   */
  async _establish(reconnecting) {
    const ws = await this._openSocket();
    const params = { client: this._clientName, labels: this._labels };
    if (this._resume) params.resume = this._resume;
    let hello;
    try {
      hello = await this._rawCall(ws, 'session.hello', params, this._connectTimeoutMs);
    } catch (err) {
      /* A resume token given to connect() that does not work is the caller's error. */
      if (!reconnecting || !(err instanceof FixtureBrokerError) ||
          err.errorName !== 'RESUME_UNKNOWN' || !params.resume) {
        ws.terminate();
        throw err;
      }
      /* Within the grace period the old connection may just not be gone yet on the
       * broker's side: try again later rather than give the leases up. */
      const grace = (this.limits && this.limits.grace_ms) || 0;
      if (Date.now() - this._droppedAt < grace) {
        ws.terminate();
        throw err;
      }
      delete params.resume;
      hello = await this._rawCall(ws, 'session.hello', params, this._connectTimeoutMs);
    }
    if (!hello || typeof hello.session !== 'string' || typeof hello.resume !== 'string') {
      ws.terminate();
      throw FixtureBrokerError.client('PROTOCOL_ERROR',
        'session.hello: the reply has no session or resume token', { method: 'session.hello' });
    }
    if (this._ws !== ws || ws.readyState !== WebSocket.OPEN) {
      throw FixtureBrokerError.client('CONNECTION_LOST',
        `the connection to ${this.url} dropped right after session.hello`,
        { method: 'session.hello' });
    }
    const previous = this.session;
    this.session = hello.session;
    this.resumeToken = hello.resume;
    this._resume = hello.resume;
    this.broker = hello.broker || null;
    this.limits = hello.limits || null;
    this.hello = hello;
    this._watch(ws);
    /* A resumed session keeps its id, and the broker says `resumed`; a new id, or a hello
     * that did not resume (another broker, behind a load balancer, may hand out the same
     * id), means the old session and its leases are gone. */
    const lost = reconnecting && previous !== null &&
      (hello.session !== previous || hello.resumed === false);
    return { resumed: hello.resumed === true, lost, previous };
  }

  _heard() {
    this._lastHeard = performance.now();
    this._probed = false;
  }

  /*
   * Watches `ws` for silence: halfway to deadAfterMs without a sign of life it pings the
   * broker; at deadAfterMs it terminates the socket, whose 'close' starts the reconnection.
   * One unref'd timer, so an idle client still never keeps Node alive.
   */
  _watch(ws) {
    clearTimeout(this._watchTimer);
    this._watchTimer = null;
    const deadAfter = this.deadAfterMs;
    if (!deadAfter || ws !== this._ws) return;
    const probeAfter = Math.max(1, Math.floor(deadAfter / 2));
    this._heard();
    const check = (confirmed) => {
      this._watchTimer = null;
      if (ws !== this._ws || ws.readyState !== WebSocket.OPEN) return;
      const silent = performance.now() - this._lastHeard;
      if (silent >= deadAfter && !confirmed) {
        /* Timers run before I/O: after an event loop that was blocked, what arrived
         * meanwhile is read first, then the silence is judged again. */
        setImmediate(check, true);
        return;
      }
      if (silent >= deadAfter) {
        this._silence = `nothing from the broker for ${Math.round(silent)} ms ` +
          `(deadAfterMs ${deadAfter})`;
        ws.terminate();
        return;
      }
      if (silent >= probeAfter && !this._probed) {
        this._probed = true;
        try {
          ws.ping();
        } catch {
          /* The socket is closing: its 'close' comes next. */
        }
      }
      this._watchTimer = setTimeout(check,
        Math.max(1, (silent >= probeAfter ? deadAfter : probeAfter) - silent), false);
      this._watchTimer.unref();
    };
    this._watchTimer = setTimeout(check, probeAfter, false);
    this._watchTimer.unref();
  }

  /* Sends one call on `ws` now, whatever the client's state (for session.hello). */
  _rawCall(ws, method, params, timeoutMs) {
    return new Promise((resolve, reject) => {
      const entry = { method, params, resolve, reject, timer: null, id: null };
      entry.timer = setTimeout(() => this._onTimeout(entry), timeoutMs);
      entry.timer.unref();
      this._send(entry, ws);
    });
  }

  /**
   * Calls any broker method; resolves to its result or rejects with a FixtureBrokerError.
   * `options.timeoutMs` bounds the wait for the reply (default: the client's timeout);
   * `options.signal`, an AbortSignal, gives up on it (ABORTED, with the signal's reason as
   * `cause`). Giving up does not undo what the broker may have done; an acquire granted
   * after its caller gave up is released when the grant arrives.
   */
  call(method, params, options = {}) {
    return new Promise((resolve, reject) => {
      if (this._state === 'closed') {
        reject(FixtureBrokerError.client('CLIENT_CLOSED', `${method}: the client is closed`,
          { method }));
        return;
      }
      const { signal } = options;
      if (signal && signal.aborted) {
        reject(abortedError(method, signal));
        return;
      }
      let onAbort = null;
      const settle = (fn) => (value) => {
        if (onAbort) signal.removeEventListener('abort', onAbort);
        fn(value);
      };
      const entry = { method, params, resolve: settle(resolve), reject: settle(reject), timer: null,
        id: null };
      if (signal) {
        onAbort = () => this._giveUp(entry, abortedError(method, signal));
        signal.addEventListener('abort', onAbort, { once: true });
      }
      const timeoutMs = options.timeoutMs || this._timeoutMs;
      entry.timer = setTimeout(() => this._onTimeout(entry), timeoutMs);
      entry.timer.unref();
      entry.timeoutMs = timeoutMs;
      if (this._state === 'open' && this._ws && this._ws.readyState === WebSocket.OPEN &&
          !(this._sock && this._sock.destroyed)) {
        this._send(entry, this._ws);
      } else {
        this._waiting.push(entry);
        this._updateRef();
      }
    });
  }

  _send(entry, ws) {
    const message = { jsonrpc: '2.0', id: this._nextId++, method: entry.method };
    if (entry.params !== undefined) message.params = entry.params;
    const text = JSON.stringify(message);
    const cap = this.limits && this.limits.max_message_bytes;
    if (cap && Buffer.byteLength(text) > cap) {
      clearTimeout(entry.timer);
      entry.reject(FixtureBrokerError.client('INVALID_ARGUMENT',
        `${entry.method}: the request is ${Buffer.byteLength(text)} bytes, over the broker's ` +
        `limit of ${cap}`, { method: entry.method }));
      return;
    }
    entry.id = message.id;
    this._inflight.set(entry.id, entry);
    this._updateRef();
    /* A write that failed never reached the broker: when the socket's 'close' comes, the
     * entry waits for the next connection instead of failing. */
    ws.send(text, (err) => {
      if (err && this._inflight.get(entry.id) === entry) entry.unsent = true;
    });
  }

  _flushWaiting() {
    if (!this._ws || this._ws.readyState !== WebSocket.OPEN) return;
    const waiting = this._waiting;
    this._waiting = [];
    for (const entry of waiting) this._send(entry, this._ws);
    this._updateRef();
  }

  _failWaiting(err) {
    const waiting = this._waiting;
    this._waiting = [];
    for (const entry of waiting) {
      clearTimeout(entry.timer);
      entry.reject(err);
    }
    this._updateRef();
  }

  /* Stops waiting for entry's reply and rejects it with err; nothing if it was settled. */
  _giveUp(entry, err) {
    if (entry.id !== null && this._inflight.get(entry.id) === entry) {
      this._inflight.delete(entry.id);
      /* A grant that arrives after its caller gave up would hold fixtures nobody knows
       * of until the session ends: release it when it comes. */
      if (entry.method === 'lease.acquire') this._abandoned.add(entry.id);
    } else {
      const i = this._waiting.indexOf(entry);
      if (i < 0) return;
      this._waiting.splice(i, 1);
    }
    clearTimeout(entry.timer);
    entry.reject(err);
    this._updateRef();
  }

  _onTimeout(entry) {
    const ms = entry.timeoutMs;
    const why = this._state === 'open' ? `no reply from ${this.url}` :
      `not connected to ${this.url}${this._lastError ? ` (${this._lastError.message})` : ''}`;
    this._giveUp(entry, FixtureBrokerError.client('TIMEOUT',
      `${entry.method}: ${why} within ${ms === undefined ? this._connectTimeoutMs : ms} ms`,
      { method: entry.method }));
  }

  _onMessage(data, isBinary) {
    let msg;
    try {
      msg = JSON.parse(isBinary ? Buffer.from(data).toString('utf8') : data.toString());
    } catch {
      return;
    }
    for (const m of Array.isArray(msg) ? msg : [msg]) this._onOne(m);
    this._updateRef();
  }

  _onOne(m) {
    if (!m || typeof m !== 'object') return;
    if (typeof m.method === 'string' && !('id' in m)) {
      this.emit(m.method, m.params);
      this.emit('notification', { method: m.method, params: m.params });
      return;
    }
    const entry = this._inflight.get(m.id);
    if (!entry) {
      if (this._abandoned.delete(m.id) && m.result && typeof m.result.lease === 'string') {
        this.call('lease.release', { lease: m.result.lease }).catch(() => {});
      }
      return;
    }
    this._inflight.delete(m.id);
    clearTimeout(entry.timer);
    if (m.error !== undefined) entry.reject(FixtureBrokerError.fromRpc(m.error, entry.method));
    else if ('result' in m) entry.resolve(m.result);
    else {
      entry.reject(FixtureBrokerError.client('PROTOCOL_ERROR',
        `${entry.method}: the reply has neither result nor error`, { method: entry.method }));
    }
  }

  _onClose(ws, code, reason, lastError) {
    if (ws !== this._ws) return;
    this._ws = null;
    this._sock = null;
    clearTimeout(this._watchTimer);
    this._watchTimer = null;
    const silence = this._silence;
    this._silence = null;
    const closing = this._state === 'closed';
    const why = silence || reason || (lastError && lastError.message) || `code ${code}`;
    const inflight = [...this._inflight.values()];
    this._inflight.clear();
    for (const entry of inflight) {
      if (entry.unsent && !closing && this._state === 'open') {
        entry.unsent = false;
        entry.id = null;
        this._waiting.push(entry);
        continue;
      }
      clearTimeout(entry.timer);
      if (entry.method === 'lease.acquire') this._abandoned.add(entry.id);
      entry.reject(closing
        ? FixtureBrokerError.client('CLIENT_CLOSED', `${entry.method}: the client is closed`,
          { method: entry.method })
        : FixtureBrokerError.client('CONNECTION_LOST',
          `${entry.method}: the connection to ${this.url} dropped before the reply (${why})`,
          { method: entry.method }));
    }
    if (code === CLOSE_TAKEN_OVER) {
      /* Another connection resumed this session: do not take it back from it. */
      this._resume = null;
    }
    if (this._state === 'open') {
      this._state = 'reconnecting';
      this._droppedAt = Date.now();
      this._attempt = 0;
      this._lastError = lastError || null;
      this.emit('disconnect', { code, reason: why });
      this._scheduleReconnect();
    }
    this._updateRef();
  }

  _scheduleReconnect() {
    if (this._state !== 'reconnecting' || this._retryTimer) return;
    const delay = BACKOFF_MS[Math.min(this._attempt, BACKOFF_MS.length - 1)];
    this._attempt++;
    this._retryTimer = setTimeout(() => {
      this._retryTimer = null;
      this._reconnectOnce();
    }, delay);
    this._updateRef();
  }

  async _reconnectOnce() {
    if (this._state !== 'reconnecting') return;
    let r;
    try {
      r = await this._establish(true);
    } catch (err) {
      this._lastError = err;
      if (this._state !== 'reconnecting') return;
      /* The broker refusing the session (a bad token) will not mend itself: let the
       * waiting calls know rather than make them wait for their timeouts. */
      if (err instanceof FixtureBrokerError && err.fromBroker && err.errorName !== 'RESUME_UNKNOWN') {
        this._failWaiting(err);
      }
      this._scheduleReconnect();
      return;
    }
    if (this._state !== 'reconnecting') {
      if (this._ws) this._ws.close(1000);
      return;
    }
    this._state = 'open';
    this._lastError = null;
    if (r.lost) {
      const leases = [...this._leases.values()];
      this._leases.clear();
      for (const lease of leases) {
        lease.released = true;
        lease.lost = true;
      }
      this.emit('sessionLost', { previous: r.previous, session: this.session, leases });
    }
    this.emit('reconnect', { resumed: r.resumed, session: this.session });
    this._flushWaiting();
  }

  /* Holds the process open only while a call needs the connection. */
  _updateRef() {
    const busy = this._opening || this._inflight.size > 0 || this._waiting.length > 0;
    if (this._sock) {
      if (busy) this._sock.ref();
      else this._sock.unref();
    }
    if (this._retryTimer) {
      if (busy) this._retryTimer.ref();
      else this._retryTimer.unref();
    }
  }

  _dropSocket() {
    if (this._ws) {
      const ws = this._ws;
      this._ws = null;
      this._sock = null;
      ws.terminate();
    }
  }

  /**
   * Leases fixtures, all or none. `fixtures` maps the caller's names to fixture requests
   * (`{kind: 'port'}`, or just `'port'`). With `waitMs` the broker queues the request that
   * long when a pool is short; the call's timeout grows by as much.
   */
  async acquire({ fixtures, waitMs, ttlMs, labels, timeoutMs, signal } = {}) {
    const params = { fixtures: normalizeFixtures(fixtures) };
    if (waitMs !== undefined) params.wait_ms = waitMs;
    if (ttlMs !== undefined) params.ttl_ms = ttlMs;
    if (labels !== undefined) params.labels = stringLabels(labels);
    const result = await this.call('lease.acquire', params,
      { timeoutMs: timeoutMs || this._timeoutMs + (waitMs || 0), signal });
    if (!result || typeof result.lease !== 'string' || !result.fixtures ||
        typeof result.fixtures !== 'object') {
      throw FixtureBrokerError.client('PROTOCOL_ERROR',
        'lease.acquire: the reply has no lease or fixtures', { method: 'lease.acquire' });
    }
    const lease = new Lease(this, result);
    this._leases.set(lease.id, lease);
    return lease;
  }

  /** Releases a lease (a Lease or its id); resolves to the broker's `released`. */
  async release(lease) {
    const id = typeof lease === 'string' ? lease : lease.id;
    const r = await this.call('lease.release', { lease: id });
    const held = this._leases.get(id);
    if (held) held.released = true;
    this._leases.delete(id);
    return r.released === true;
  }

  /** This session's leases as the broker lists them (`lease.list`). */
  async list() {
    const r = await this.call('lease.list', {});
    return r.leases;
  }

  /** The broker's counts (`broker.status`). */
  status() {
    return this.call('broker.status', {});
  }

  /** A server fixture's captured output (`server.logs`): `{stdout, stderr}`. */
  logs(lease, name, { tail } = {}) {
    const params = { lease: typeof lease === 'string' ? lease : lease.id, fixture: name };
    if (tail !== undefined) params.tail = tail;
    return this.call('server.logs', params);
  }

  /**
   * Makes sure the PostgreSQL template with this hash exists. Exactly one caller across all
   * clients builds it: for that caller `build(url)` runs against the private build database,
   * then the template is finished; if `build` throws, the build is discarded (the next
   * waiter builds) and the error is rethrown. Every other caller waits (up to `waitMs`) until
   * the template is ready. Resolves to `{hash, built}`.
   */
  async ensureTemplate(hash, build, { waitMs = 300000, timeoutMs } = {}) {
    const r = await this.call('pg.template.ensure', { hash, wait_ms: waitMs },
      { timeoutMs: timeoutMs || this._timeoutMs + waitMs });
    if (r && r.state === 'ready') return { hash, built: false };
    if (!r || r.state !== 'build' || typeof r.url !== 'string') {
      throw FixtureBrokerError.client('PROTOCOL_ERROR',
        `pg.template.ensure: unexpected reply ${JSON.stringify(r)}`,
        { method: 'pg.template.ensure' });
    }
    try {
      await build(r.url);
    } catch (err) {
      await this.call('pg.template.discard', { hash }).catch(() => {});
      throw err;
    }
    await this.call('pg.template.finish', { hash });
    return { hash, built: true };
  }

  /**
   * Releases this session's leases (unless `release: false`) and closes the connection.
   * Calls still waiting fail with CLIENT_CLOSED. Idempotent.
   */
  close({ release = true } = {}) {
    if (this._closePromise) return this._closePromise;
    this._closePromise = (async () => {
      if (release && this._state === 'open') {
        try {
          const r = await this.call('lease.list', {}, { timeoutMs: RELEASE_ON_CLOSE_MS });
          await Promise.all(r.leases.map((l) =>
            this.call('lease.release', { lease: l.lease }, { timeoutMs: RELEASE_ON_CLOSE_MS })
              .catch(() => {})));
        } catch {
          /* The broker releases them after its grace period anyway. */
        }
      }
      const ws = this._ws;
      this._state = 'closed';
      clearTimeout(this._watchTimer);
      this._watchTimer = null;
      for (const lease of this._leases.values()) lease.released = true;
      this._leases.clear();
      if (this._retryTimer) {
        clearTimeout(this._retryTimer);
        this._retryTimer = null;
      }
      this._failWaiting(FixtureBrokerError.client('CLIENT_CLOSED', 'the client is closed'));
      if (ws && ws.readyState !== WebSocket.CLOSED) {
        await new Promise((resolve) => {
          const timer = setTimeout(() => {
            ws.terminate();
            resolve();
          }, CLOSE_WAIT_MS);
          timer.unref();
          ws.once('close', () => {
            clearTimeout(timer);
            resolve();
          });
          ws.close(1000, 'client closing');
        });
      }
      this._ws = null;
      this._sock = null;
      this.emit('close');
    })();
    return this._closePromise;
  }

  [kAsyncDispose]() {
    return this.close();
  }
}

/**
 * Connects to the broker and opens a session (`session.hello`). Options: `url` (default
 * $FIXTURE_BROKER_URL, else ws://127.0.0.1:7357), `token` (default $FIXTURE_BROKER_TOKEN),
 * `client` (a name for the broker's logs), `labels`, `timeoutMs` (per call, default 60 s),
 * `connectTimeoutMs` (default 10 s), `resume` (a resume token to take a session over),
 * `deadAfterMs` (how long a silent connection may last before the client takes it for dead
 * and reconnects; default: the broker's `dead_after_ms`, else 15 s; 0: never). For wss://,
 * `ca`, `cert`, `key`, `passphrase`, `rejectUnauthorized` (default true) and `servername`
 * go to tls.connect as Node documents them; `ca`, `cert` and `key` default to the contents
 * of the PEM files $FIXTURE_BROKER_CA, $FIXTURE_BROKER_CERT and $FIXTURE_BROKER_KEY name.
 */
async function connect(options = {}) {
  const client = new Client(options);
  await client._open();
  return client;
}

module.exports = {
  Client,
  Lease,
  connect,
  normalizeFixtures,
  DEFAULT_URL,
  SUBPROTOCOL,
};
