// index.d.ts: TypeScript declarations of the fixture-broker client (the same for the ES-module and CommonJS entries).

import { EventEmitter } from 'node:events';

/** A fixture request: `{kind: 'port'}`, `{kind: 'server', template: 'api'}`, `{kind: 'postgres', template: hash}`. */
export interface FixtureRequest {
  kind: string;
  [option: string]: unknown;
}

/** Fixture requests by the caller's names; a string is short for `{kind: string}`. */
export type FixturesRequest = Record<string, FixtureRequest | string>;

/** A granted fixture's fields, as plain values. */
export interface Fixture {
  kind: string;
  host?: string;
  port?: number;
  /** postgres: a connection URL for libpq and node-postgres. */
  url?: string;
  database?: string;
  schema?: string;
  user?: string;
  password?: string;
  /** server: its ports by name, and its process id. */
  ports?: Record<string, number>;
  pid?: number;
  [field: string]: unknown;
}

export interface ConnectOptions {
  /** Default: $FIXTURE_BROKER_URL, else ws://127.0.0.1:7357. */
  url?: string;
  /** A bearer token; default: $FIXTURE_BROKER_TOKEN. */
  token?: string;
  /** A name for the broker's logs. */
  client?: string;
  /** The session's labels (values are turned into strings); `pid` is added. */
  labels?: Record<string, string | number | undefined>;
  /** How long a call may wait for its reply; default 60000. */
  timeoutMs?: number;
  /** How long connecting and session.hello may take; default 10000. */
  connectTimeoutMs?: number;
  /** A resume token of another client's session, to take it over with its leases. */
  resume?: string;
  /**
   * How long the connection may go without a message or ping from the broker before the
   * client takes it for dead, terminates it and reconnects. Default: the broker's
   * `limits.dead_after_ms`, else 15000; 0: never.
   */
  deadAfterMs?: number;
  /**
   * wss:// only, as tls.connect takes them: the CAs that may sign the broker's
   * certificate (PEM); default: the contents of $FIXTURE_BROKER_CA, else Node's CAs.
   */
  ca?: string | Buffer | Array<string | Buffer>;
  /** A client certificate (PEM) for mutual TLS; default: the file $FIXTURE_BROKER_CERT. */
  cert?: string | Buffer | Array<string | Buffer>;
  /** The client certificate's key (PEM); default: the file $FIXTURE_BROKER_KEY. */
  key?: string | Buffer | Array<string | Buffer>;
  /** The key's passphrase, if it has one. */
  passphrase?: string;
  /** Verify the broker's certificate; default true. */
  rejectUnauthorized?: boolean;
  /** The name to send as SNI and check the certificate against; default: the URL's host. */
  servername?: string;
}

export interface AcquireOptions {
  fixtures: FixturesRequest;
  /** How long the broker may queue the request when a pool is short; default 0. */
  waitMs?: number;
  /** The lease's TTL; default none (the lease lives as long as the session). */
  ttlMs?: number | null;
  labels?: Record<string, string | number | undefined>;
  /** Default: the client's timeout plus waitMs. */
  timeoutMs?: number;
  /** Gives up on the acquire (ABORTED); a grant that comes later is released. */
  signal?: AbortSignal;
}

export interface CallOptions {
  timeoutMs?: number;
  /** Gives up on the call (ABORTED, with the signal's reason as `cause`). */
  signal?: AbortSignal;
}

export interface Limits {
  max_message_bytes: number;
  grace_ms: number;
  max_fixtures_per_lease: number;
  /** How often the broker pings this connection (0: never); absent from older brokers. */
  heartbeat_ms?: number;
  /** The broker drops a connection silent this long, then waits grace_ms for a resume. */
  dead_after_ms?: number;
  ports: { first: number; last: number };
  [name: string]: unknown;
}

export interface BrokerStatus {
  version: string;
  instance: string;
  uptime_ms: number;
  sessions: number;
  sessions_in_grace: number;
  shutting_down: boolean;
  /** True from the first moment of a drain (SIGTERM, admin.drain): no new sessions. */
  draining: boolean;
  /** While draining, ms left before the leases still held are released; else null. */
  drain_remaining_ms: number | null;
  leases: number;
  waiting: number;
  ports: { first: number; last: number; size: number; free: number; leased: number; quarantined: number };
  [name: string]: unknown;
}

export interface ListedLease {
  lease: string;
  fixtures: Record<string, Fixture>;
  labels: Record<string, string>;
  ttl_ms: number | null;
  expires_in_ms: number | null;
  age_ms: number;
}

export interface ServerLogs {
  stdout: string;
  stderr: string;
}

/** The params of the `server.exited` notification. */
export interface ServerExited {
  lease: string;
  fixture: string;
  status?: number;
  signal?: string;
  log_tail?: unknown;
}

export declare class Lease implements AsyncDisposable {
  readonly client: Client;
  readonly id: string;
  /** Each fixture's fields by the caller's names (`lease.fixtures.http.port`). */
  fixtures: Record<string, Fixture>;
  ttlMs: number | null;
  /** True once released (by this object, by close(), or when the session was lost). */
  released: boolean;
  /** True once its session was lost: renew, reset and logs then reject with SESSION_LOST. */
  lost: boolean;
  /** Resolves to true if this call released the lease, false if the broker no longer held it. */
  release(): Promise<boolean>;
  /** Swaps the fixture for a fresh one (`lease.reset`); resolves to, and stores, its new fields. */
  reset(name: string, options?: CallOptions): Promise<Fixture>;
  /** Pushes the expiry to now + ttlMs (or the lease's own TTL). */
  renew(ttlMs?: number): Promise<{ ttlMs: number | null; expiresInMs: number | null }>;
  /** A server fixture's captured output. */
  logs(name: string, options?: { tail?: number }): Promise<ServerLogs>;
  toJSON(): { lease: string; fixtures: Record<string, Fixture>; ttl_ms: number | null };
  [Symbol.asyncDispose](): Promise<void>;
}

export interface ClientEvents {
  /** The connection dropped; calls made now wait for the reconnection. */
  disconnect: [{ code: number; reason: string }];
  /** A new connection is up; `resumed` says whether the old session (and its leases) came back. */
  reconnect: [{ resumed: boolean; session: string }];
  /** The old session could not be resumed: its leases are gone. */
  sessionLost: [{ previous: string | null; session: string; leases: Lease[] }];
  /** A supervised server fixture died after it was ready. */
  'server.exited': [ServerExited];
  /** Every broker notification. */
  notification: [{ method: string; params: unknown }];
  close: [];
}

export declare class Client extends EventEmitter implements AsyncDisposable {
  constructor(options?: ConnectOptions);
  readonly url: string;
  /** The session id ("s-…"). */
  session: string | null;
  /** The session's resume token: a secret. */
  resumeToken: string | null;
  broker: { version: string; instance: string } | null;
  limits: Limits | null;
  /** The last session.hello result. */
  hello: Record<string, unknown> | null;
  readonly connected: boolean;
  readonly closed: boolean;
  /** The silence after which the connection counts as dead (the option, the broker's, 15000). */
  readonly deadAfterMs: number;

  /** Calls any broker method with params by name. */
  call<T = any>(method: string, params?: Record<string, unknown>, options?: CallOptions): Promise<T>;
  acquire(options: AcquireOptions): Promise<Lease>;
  release(lease: Lease | string): Promise<boolean>;
  list(): Promise<ListedLease[]>;
  status(): Promise<BrokerStatus>;
  logs(lease: Lease | string, name: string, options?: { tail?: number }): Promise<ServerLogs>;
  /**
   * Builds the PostgreSQL template with this hash if this caller is the builder (`build(url)`
   * on the build database, then `pg.template.finish`; `pg.template.discard` if it throws), or
   * waits until another caller has built it.
   */
  ensureTemplate(
    hash: string,
    build: (url: string) => Promise<void> | void,
    options?: { waitMs?: number; timeoutMs?: number },
  ): Promise<{ hash: string; built: boolean }>;
  /** Releases this session's leases (unless release is false) and closes the connection. */
  close(options?: { release?: boolean }): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;

  on<E extends keyof ClientEvents>(event: E, listener: (...args: ClientEvents[E]) => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
  once<E extends keyof ClientEvents>(event: E, listener: (...args: ClientEvents[E]) => void): this;
  once(event: string | symbol, listener: (...args: any[]) => void): this;
  off<E extends keyof ClientEvents>(event: E, listener: (...args: ClientEvents[E]) => void): this;
  off(event: string | symbol, listener: (...args: any[]) => void): this;
}

/** Connects and opens a session (session.hello). */
export declare function connect(options?: ConnectOptions): Promise<Client>;

/**
 * The broker's error names (protocol/openrpc.json), and the client's own:
 * INVALID_ARGUMENT (-1), CONNECT_FAILED and CONNECTION_LOST (-3), TIMEOUT (-4),
 * PROTOCOL_ERROR (-6), CLIENT_CLOSED (-7), SESSION_LOST (-9), ABORTED (-10).
 */
export type ErrorName =
  | 'PARSE_ERROR' | 'INVALID_REQUEST' | 'METHOD_NOT_FOUND' | 'INVALID_PARAMS' | 'INTERNAL_ERROR'
  | 'UNAUTHENTICATED' | 'RESUME_UNKNOWN' | 'LEASE_NOT_FOUND' | 'LEASE_NOT_OWNED'
  | 'UNKNOWN_FIXTURE_KIND' | 'TOO_MANY_FIXTURES' | 'SHUTTING_DOWN' | 'ACQUIRE_CANCELLED'
  | 'QUOTA_EXCEEDED' | 'NOT_ADMIN'
  | 'PORTS_EXHAUSTED'
  | 'INVALID_ARGUMENT' | 'CONNECT_FAILED' | 'CONNECTION_LOST' | 'TIMEOUT' | 'PROTOCOL_ERROR'
  | 'CLIENT_CLOSED' | 'SESSION_LOST' | 'ABORTED'
  | (string & {});

export declare class FixtureBrokerError extends Error {
  constructor(message: string, options?: {
    code?: number; errorName?: string; data?: unknown; method?: string; cause?: unknown;
  });
  name: 'FixtureBrokerError';
  /** The numeric code: the broker's JSON-RPC code, or a client code (-1 to -10). */
  code: number;
  /** The stable symbolic name ("PORTS_EXHAUSTED"). */
  errorName: ErrorName;
  /** The error's `data` as the broker sent it (`data.name`, `data.detail`, ...). */
  data: any;
  /** The method whose call failed. */
  method?: string;
  /** True when the broker sent the error, false when the client raised it. */
  readonly fromBroker: boolean;
  static fromRpc(error: unknown, method: string): FixtureBrokerError;
}

export declare const CLIENT_ERRORS: Readonly<Record<
  'INVALID_ARGUMENT' | 'CONNECT_FAILED' | 'CONNECTION_LOST' | 'TIMEOUT' | 'PROTOCOL_ERROR' | 'CLIENT_CLOSED'
  | 'SESSION_LOST' | 'ABORTED',
  number
>>;

/**
 * The sha256 (hex) of the files matching the globs (paths relative to cwd, sizes, contents,
 * in sorted order). `!pattern` excludes. Rejects when nothing matches, unless allowEmpty.
 */
export declare function hashFiles(
  globs: string | string[],
  options?: { cwd?: string; allowEmpty?: boolean },
): Promise<string>;

/** The absolute paths of the files matching the globs, sorted by path relative to cwd. */
export declare function matchFiles(globs: string | string[], options?: { cwd?: string }): string[];

/** Parses `@fixtures` pragma values (JSON, or `name:kind[/template]` entries). */
export declare function parseFixturesPragma(
  value: string | string[] | undefined,
  where?: string,
): Record<string, FixtureRequest>;

export declare const DEFAULT_URL: string;
export declare const SUBPROTOCOL: string;

/** The CommonJS module object (also index.mjs's default export). */
export interface FixtureBrokerModule {
  connect: typeof connect;
  Client: typeof Client;
  Lease: typeof Lease;
  FixtureBrokerError: typeof FixtureBrokerError;
  CLIENT_ERRORS: typeof CLIENT_ERRORS;
  hashFiles: typeof hashFiles;
  matchFiles: typeof matchFiles;
  parseFixturesPragma: typeof parseFixturesPragma;
  DEFAULT_URL: string;
  SUBPROTOCOL: string;
  default: FixtureBrokerModule;
}

declare const fixtureBroker: FixtureBrokerModule;
export default fixtureBroker;
