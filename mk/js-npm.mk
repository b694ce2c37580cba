# ---- sdk-js: template recipes and the runner matrix, each project with its own lock file -----
# js-recipes runs sdk-js/test/recipes (plain SQL, knex, sequelize.sync(), TypeORM, drizzle-kit
# push: one template each, built by the library from its lock file) against the real broker.
# js-matrix runs the same small suite under each supported runner (sdk-js/test/matrix). A
# project's `npm ci` runs only when its node_modules is missing or older than its lock file.
JS_NPM_CI = cd $(dir $@)/.. && npm ci --no-audit --no-fund --silent && touch node_modules/.package-lock.json

.PHONY: js-recipes js-matrix

sdk-js/test/recipes/node_modules/.package-lock.json: sdk-js/test/recipes/package-lock.json
	$(JS_NPM_CI)

js-recipes: $(B)/fixture-broker js-deps sdk-js/test/recipes/node_modules/.package-lock.json
	cd sdk-js && $(JS_ENV) timeout 300 node --test test/recipes/recipes.test.mjs

js: js-recipes
# ---- end of the recipes and the runner matrix ----------------------------------------------
