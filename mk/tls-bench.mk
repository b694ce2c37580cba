# ---- wss:// against ws:// by client library (tests/bench/tls.sh) --------------------------
# The acquire round trip of libfxb, sdk-js, sdk-py and sdk-go over a TLS broker and a plain
# one in the same run, printed with each one's wss/ws ratio (the same benches as
# clients-bench). Part of make bench.
.PHONY: tls-bench

tls-bench: $(B)/fixture-broker $(B)/tests/bench/acquire_client $(SDK_PY_VENV)/.package \
		js-deps $(B)/acquire-go
	@sh tests/bench/tls.sh $(abspath $(B)/fixture-broker) \
		$(abspath $(B)/tests/bench/acquire_client) $(abspath $(SDK_PY_VENV)/bin/python) \
		$(abspath $(B)/acquire-go)

bench: tls-bench
