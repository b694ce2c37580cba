// fixtures.mjs: the project's test, extended with worker-scoped fixtures from the broker.
import { test as base } from 'vitest';
import { brokerFixtures } from 'fixture-broker/vitest/fixtures';

export const test = base.extend(brokerFixtures({ http: 'port', db: { kind: 'postgres' } }));
