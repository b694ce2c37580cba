// jest.config.cjs: one template per recipe of the README, each built by its library, and a test file per template.
'use strict';

module.exports = {
  rootDir: __dirname,
  /* The preset by path: this directory is a project of its own (package.json). */
  ...require('../../jest-preset.cjs'),
  testMatch: ['<rootDir>/*.test.cjs'],
  testEnvironmentOptions: {
    templates: {
      sql: { files: ['sql/*.sql'], build: './sql/build.cjs' },
      knex: { files: ['knex/migrations/*.cjs'], build: './knex/build.cjs' },
      sequelize: { files: ['sequelize/models.cjs'], build: './sequelize/build.cjs' },
      typeorm: { files: ['typeorm/entities.cjs'], build: './typeorm/build.cjs' },
      drizzle: { files: ['drizzle/schema.cjs'], build: './drizzle/build.cjs' },
    },
  },
};
