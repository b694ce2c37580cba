// fixtures.d.mts: the declarations of fixture-broker/vitest/fixtures (worker-scoped fixtures for test.extend).
import type { Fixture, FixturesRequest, Lease } from '../index.js';

/**
 * The fixtures object for Vitest's test.extend: `fixtureLease` (one lease per worker with
 * every fixture in specs) and one fixture per name whose value is that fixture's fields, all
 * with { scope: 'worker' }.
 */
export declare function brokerFixtures<S extends FixturesRequest>(
  specs: S,
  options?: { waitMs?: number; ttlMs?: number },
): { fixtureLease: [(context: object, use: (lease: Lease) => Promise<void>) => Promise<void>, { scope: 'worker' }] }
  & { [K in keyof S]: [(context: { fixtureLease: Lease }, use: (fixture: Fixture) => Promise<void>) => Promise<void>, { scope: 'worker' }] };

export default brokerFixtures;
