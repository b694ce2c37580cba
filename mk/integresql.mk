# ---- IntegreSQL's REST API (broker/api/integresql.c) -------------------------------------
# integresql-test drives the real broker with two real IntegreSQL clients: the npm
# @devoxa/integresql-client (tests/integresql/js, node --test, installed with npm ci from its
# lock file) and the Go integresql-client-go v1.0.0 (tests/integresql/go, go vet and go test,
# from its go.sum through the Go module proxy). Each suite keeps the embedded PostgreSQL
# cluster of its brokers in a state directory of its own under $(B), and takes its ports
# from a range of its own.
# integresql-bench (part of `make bench`) builds IntegreSQL v1.1.0 from the module proxy and
# times it against the broker on one throwaway PostgreSQL (tests/integresql/bench.sh).
ISQL_DIR := tests/integresql
ISQL_ENV = FXB_BROKER=$(abspath $(B)/fixture-broker)

.PHONY: integresql-test integresql-js-test integresql-go-test integresql-bench

$(ISQL_DIR)/js/node_modules/.package-lock.json: $(ISQL_DIR)/js/package-lock.json
	cd $(ISQL_DIR)/js && npm ci --no-audit --no-fund
	@touch $@

integresql-test: integresql-js-test integresql-go-test

integresql-js-test: $(B)/fixture-broker $(ISQL_DIR)/js/node_modules/.package-lock.json
	@mkdir -p $(B)/integresql-state-js
	cd $(ISQL_DIR)/js && $(ISQL_ENV) FXB_ISQL_STATE=$(abspath $(B))/integresql-state-js \
		FXB_ISQL_PORTS=28800-28899 timeout 300 node --test --test-concurrency=1 integresql.test.mjs

integresql-go-test: $(B)/fixture-broker
	@command -v go >/dev/null || { echo "integresql-go-test: go is not installed" >&2; exit 1; }
	@mkdir -p $(B)/integresql-state-go
	cd $(ISQL_DIR)/go && go vet ./... && $(ISQL_ENV) \
		FXB_ISQL_STATE=$(abspath $(B))/integresql-state-go FXB_ISQL_PORTS=28900-28999 \
		timeout 300 go test -count=1 ./...

integresql-bench: $(B)/fixture-broker
	@$(ISQL_ENV) B=$(abspath $(B)) sh $(ISQL_DIR)/bench.sh

test: integresql-test
bench: integresql-bench
# ---- end of IntegreSQL's REST API ---------------------------------------------------------
