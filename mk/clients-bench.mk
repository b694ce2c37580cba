# ---- the acquire round trip by client library (tests/bench/clients.sh) -------------------
# libfxb, sdk-js, sdk-py and sdk-go against one broker in one run, printed with each one's
# ratio to libfxb. Part of make bench.
.PHONY: clients-bench

$(B)/acquire-go: $(wildcard sdk-go/*.go sdk-go/bench/acquire/*.go) sdk-go/go.mod | go-check
	cd sdk-go && $(GO) build -o $(abspath $@) ./bench/acquire

clients-bench: $(B)/fixture-broker $(B)/tests/bench/acquire_client $(SDK_PY_VENV)/.package \
		js-deps $(B)/acquire-go
	@sh tests/bench/clients.sh $(abspath $(B)/fixture-broker) \
		$(abspath $(B)/tests/bench/acquire_client) $(abspath $(SDK_PY_VENV)/bin/python) \
		$(abspath $(B)/acquire-go)

bench: clients-bench
