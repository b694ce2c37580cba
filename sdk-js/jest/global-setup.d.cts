// global-setup.d.cts: the type of fixture-broker/jest/global-setup.
declare function fixtureBrokerGlobalSetup(globalConfig?: unknown, projectConfig?: unknown): Promise<void>;
export = fixtureBrokerGlobalSetup;
