# ---- sdk-js: template recipes and the runner matrix, each project with its own lock file -----
# js-recipes runs sdk-js/test/recipes (plain SQL, knex, sequelize.sync(), TypeORM, drizzle-kit
# push: one template each, built by the library from its lock file) against the real broker.
# js-matrix runs the same small suite under each supported runner (sdk-js/test/matrix). A
# project's `npm ci` runs only when its node_modules is missing or older than its lock file.
JS_NPM_CI = cd $(dir $@)/.. && npm ci --no-audit --no-fund --silent && mkdir -p node_modules && \
	touch node_modules/.package-lock.json

.PHONY: js-recipes js-matrix

sdk-js/test/recipes/node_modules/.package-lock.json: sdk-js/test/recipes/package-lock.json
	$(JS_NPM_CI)

js-recipes: $(B)/fixture-broker js-deps sdk-js/test/recipes/node_modules/.package-lock.json
	cd sdk-js && $(JS_ENV) timeout 300 node --test test/recipes/recipes.test.mjs

js: js-recipes

# The matrix's projects get the package as a user's project does: packed (npm pack, no
# optional native packages: FIXTURE_BROKER_BIN is the build's broker) and installed with
# npm i --no-save over their locked runner.
JS_MATRIX := jest29 jest30 vitest3 vitest4 node-test
JS_MATRIX_TGZ := $(B)/matrix/fixture-broker-$(VERSION).tgz
JS_PACKAGE_FILES := $(shell find sdk-js/index.* sdk-js/jest-preset.cjs sdk-js/package.json \
	sdk-js/README.md sdk-js/lib sdk-js/jest sdk-js/vitest sdk-js/bin -type f)

$(JS_MATRIX_TGZ): $(JS_PACKAGE_FILES)
	@mkdir -p $(dir $@)
	cd sdk-js && npm pack --silent --pack-destination $(abspath $(dir $@)) >/dev/null

$(JS_MATRIX:%=sdk-js/test/matrix/%/node_modules/.package-lock.json): \
		sdk-js/test/matrix/%/node_modules/.package-lock.json: sdk-js/test/matrix/%/package-lock.json
	$(JS_NPM_CI)

js-matrix: $(B)/fixture-broker js-deps $(JS_MATRIX_TGZ) \
		$(JS_MATRIX:%=sdk-js/test/matrix/%/node_modules/.package-lock.json)
	@for p in $(JS_MATRIX); do (cd sdk-js/test/matrix/$$p && npm i --no-save --no-audit --no-fund \
		--silent $(abspath $(JS_MATRIX_TGZ))) || exit 1; done
	cd sdk-js && $(JS_ENV) timeout 600 node --test test/matrix/matrix.test.mjs

js: js-matrix

# The express-pg example: its locked dependencies (Jest 30), then the packed package.
JS_EXAMPLE_PKG := sdk-js/examples/express-pg/node_modules/fixture-broker/package.json

sdk-js/examples/express-pg/node_modules/.package-lock.json: sdk-js/examples/express-pg/package-lock.json
	$(JS_NPM_CI)

$(JS_EXAMPLE_PKG): $(JS_MATRIX_TGZ) sdk-js/examples/express-pg/node_modules/.package-lock.json
	cd sdk-js/examples/express-pg && npm i --no-save --no-audit --no-fund --silent $(abspath $(JS_MATRIX_TGZ))
	@touch $@

js-example js-example-bench: $(JS_EXAMPLE_PKG)
# tests/multihost/test_postgres.py runs the example from a worker namespace.
multihost-test: $(JS_EXAMPLE_PKG)
# ---- end of the recipes and the runner matrix ----------------------------------------------
