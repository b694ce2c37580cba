# ---- forwarding to an upstream broker (broker/net/upstream.c, broker/fixtures/forward/) ----
# tests/integration/test_forward.c is one of the integration suites (make integration, and
# so make test); forward-test runs it alone. forward-bench (part of make bench) times a
# forwarded PostgreSQL acquire against a direct one in the same run (goal: at most 1.5x).
.PHONY: forward-test forward-bench

forward-test: all $(B)/tests/integration/test_forward $(TEST_SERVERS)
	@FXB_BROKER=$(abspath $(B)/fixture-broker) $(TEST_SERVERS_ENV) \
		sh tests/run-suites.sh integration $(B)/tests/integration/test_forward

forward-bench: $(B)/fixture-broker $(B)/tests/bench/fwd_acquire
	@FXB_BROKER=$(abspath $(B)/fixture-broker) $(B)/tests/bench/fwd_acquire

bench: forward-bench
