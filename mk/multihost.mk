# ---- the broker seen from other hosts (tests/multihost/) ----------------------------------
# Network namespaces and veth pairs the suite makes (root only: elsewhere it says why and
# is skipped), the real broker in one, workers running the real Python client in two
# others; and liveness on one host (test_liveness.py, no root needed). It uses the Python
# SDK's virtual environment. test_cuts.py also runs workers of sdk-js (node, from this
# checkout: it needs js-deps) and of libfxb (tests/multihost/*.c, built here against
# libfxb.a into $(B)/tests/multihost/); test_tls.py also runs sdk-go (a worker built with go).
# test_fleet.py runs a PostgreSQL server of its own (pgserver.py, as the postgres user) and
# the express-pg example's Jest suite on two runners at once, forwarding to shared brokers.
.PHONY: multihost-test

MULTIHOST_BIN := $(patsubst tests/multihost/%.c,$(B)/tests/multihost/%,$(wildcard tests/multihost/*.c))

$(B)/tests/multihost/%: tests/multihost/%.c $(B)/libfxb.a | check-deps
	@mkdir -p $(dir $@)
	$(CC) $(CLIENT_CFLAGS) -o $@ $< $(B)/libfxb.a $(SDK_LIBS)

multihost-test: $(B)/fixture-broker $(TEST_SERVERS) $(SDK_PY_VENV)/.package $(MULTIHOST_BIN) js-deps
	FXB_BROKER=$(abspath $(B)/fixture-broker) $(TEST_SERVERS_ENV) \
		FXB_MULTIHOST_BIN=$(abspath $(B)/tests/multihost) timeout 300 \
		$(SDK_PY_VENV)/bin/python -m pytest -q -rs -p no:cacheprovider tests/multihost

# test_tls.py's sdk-go worker (sdk-go/internal/tlsworker), beside the C ones.
MULTIHOST_GO_WORKER := $(B)/tests/multihost/go_tls_worker
$(MULTIHOST_GO_WORKER): $(wildcard sdk-go/*.go sdk-go/internal/tlsworker/*.go) sdk-go/go.mod sdk-go/go.sum | go-check
	@mkdir -p $(dir $@)
	cd sdk-go && $(GO) build -o $(abspath $@) ./internal/tlsworker

multihost-test: $(MULTIHOST_GO_WORKER)
