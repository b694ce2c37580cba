// usage.mts: compiles the README's uses of fixture-broker against index.d.ts (tsc --noEmit, nothing runs).
import { connect, FixtureBrokerError, hashFiles, type Fixture, type Lease } from 'fixture-broker';
import fixtureBroker from 'fixture-broker';

export async function example(): Promise<number> {
  await using client = await connect({ url: 'ws://127.0.0.1:7357', client: 'types', labels: { worker: 1 } });
  await using lease = await client.acquire({ fixtures: { http: 'port', db: { kind: 'postgres', template: 'x' } }, waitMs: 1000 });
  const http: Fixture = lease.fixtures.http;
  const port: number | undefined = http.port;
  const fresh = await lease.reset('db');
  const url: string | undefined = fresh.url;
  const renewed = await lease.renew(5000);
  const ttl: number | null = renewed.ttlMs;
  const released: boolean = await lease.release();
  const logs = await client.logs(lease, 'api', { tail: 50 });
  const out: string = logs.stdout + logs.stderr;
  client.on('server.exited', (e) => { const f: string = e.fixture; void f; });
  client.on('reconnect', (e) => { const r: boolean = e.resumed; void r; });
  const status = await client.status();
  const hash = await hashFiles(['migrations/**/*.sql'], { cwd: '.' });
  const built = await client.ensureTemplate(hash, async (dbUrl: string) => { void dbUrl; }, { waitMs: 60000 });
  const b: boolean = built.built;
  const any = await client.call<{ leases: unknown[] }>('lease.list', {}, { signal: AbortSignal.timeout(1000) });
  await client.acquire({ fixtures: { p: 'port' }, signal: new AbortController().signal });
  try {
    await client.acquire({ fixtures: { p: 'port' } });
  } catch (err) {
    if (err instanceof FixtureBrokerError && err.errorName === 'PORTS_EXHAUSTED') {
      const n: number = err.code;
      void n;
    }
  }
  const l: Lease = lease;
  void [url, ttl, released, out, status.ports.free, b, any.leases, l, fixtureBroker.connect];
  return port ?? 0;
}

import vitestSetup from 'fixture-broker/vitest/global-setup';

export async function wrappedVitestSetup(project: { provide(key: string, value: unknown): void }): Promise<() => Promise<void>> {
  return vitestSetup(project);
}

/* The ES-module entry's default export is the module object (index.d.mts). */
export function defaultExport(): void {
  const c: typeof connect = fixtureBroker.connect;
  const d: typeof fixtureBroker = fixtureBroker.default;
  const e: typeof FixtureBrokerError = fixtureBroker.FixtureBrokerError;
  void [c, d, e];
}

/* fixture-broker/vitest/fixtures: worker-scoped fixtures for test.extend. */
import { brokerFixtures } from 'fixture-broker/vitest/fixtures';

export function workerFixtures(): void {
  const f = brokerFixtures({ db: { kind: 'postgres' }, http: 'port' }, { waitMs: 1000 });
  const scope: 'worker' = f.db[1].scope;
  const lease: typeof f.fixtureLease = f.fixtureLease;
  void [scope, lease];
}
