// global-setup.d.mts: the type of fixture-broker/vitest/global-setup.
export default function fixtureBrokerGlobalSetup(
  project: { provide(key: string, value: unknown): void; config?: unknown },
): Promise<() => Promise<void>>;
