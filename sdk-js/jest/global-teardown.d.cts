// global-teardown.d.cts: the type of fixture-broker/jest/global-teardown.
declare function fixtureBrokerGlobalTeardown(globalConfig?: unknown, projectConfig?: unknown): Promise<void>;
export = fixtureBrokerGlobalTeardown;
