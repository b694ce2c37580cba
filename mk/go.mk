# ---- the Go SDK (sdk-go/, module fixturebroker.dev/fixturebroker) ------------------------------
# `make go` runs go-vet (the SDK and the example module), go-test (the SDK's tests with -race:
# the client against real brokers it starts, the protocol vectors, and fxb, whose first
# Acquire starts a broker for its test process from FIXTURE_BROKER_BIN) and go-example (the
# examples/todo module, `go test -p 4 -race ./...` under `fixture-broker run`, so its four test
# processes share one broker). Modules come from go.mod/go.sum through the Go module proxy into
# the usual module cache. The brokers keep their state (the embedded PostgreSQL cluster) in
# $(B)/go-state and $(B)/go-example-state across runs, and take ports from 31000-31499, clear of
# the other suites' ranges.
GO ?= go
GO_ENV := FIXTURE_BROKER_BIN=$(abspath $(B)/fixture-broker) FXB_GO_STATE=$(abspath $(B))/go-state \
	FIXTURE_BROKER_ARGS="--ports 31200-31299 --state-dir $(abspath $(B))/go-state"
GO_EXAMPLE_DIR := sdk-go/examples/todo

.PHONY: go go-check go-vet go-test go-example

go: go-vet go-test go-example

go-check:
	@command -v $(GO) >/dev/null || { echo "make: go is not on PATH; the Go suites need Go 1.25 or newer" >&2; exit 1; }

go-vet: go-check
	cd sdk-go && $(GO) vet ./...
	cd $(GO_EXAMPLE_DIR) && $(GO) vet ./...

go-test: $(B)/fixture-broker go-check
	cd sdk-go && env -u FIXTURE_BROKER_URL $(GO_ENV) timeout 300 $(GO) test -race -count=1 ./...

go-example: $(B)/fixture-broker go-check
	cd $(GO_EXAMPLE_DIR) && env -u FIXTURE_BROKER_URL timeout 300 $(abspath $(B)/fixture-broker) run \
		--ports 31300-31499 --state-dir $(abspath $(B))/go-example-state --log-level warn -- \
		$(GO) test -p 4 -race -count=1 ./...

test: go
# ---- end of the Go SDK ---------------------------------------------------------------------------
