# ---- fleet templates: one build for many brokers on one PostgreSQL (tests/bench/build_bench.c)
# build-bench: a template build asked for by 2 brokers x 8 workers at once (brokers on one
# server through --pg-url) against one worker alone building it, in the same run; prints
# the ratio (goal <= 1.3). The fleet suite itself is tests/integration/test_pg_fleet.c,
# part of `make integration`. Part of make bench.
.PHONY: build-bench

build-bench: $(B)/fixture-broker $(B)/tests/bench/build_bench
	@FXB_BROKER=$(abspath $(B)/fixture-broker) $(B)/tests/bench/build_bench

bench: build-bench
