# ---- several brokers on one PostgreSQL server (tests/integration/test_pg_instances.c) ----------
# The suite is one of make integration's (and so of make test's); this runs it alone:
# a broker killed and replaced by another instance is swept by a living one, the sweep
# command (dry run, drop, refusal of a live instance), an idle broker keeping its lock,
# postgres.fleet_max across two brokers, and a tenant's databases quota across them.
.PHONY: pg-instances-test

pg-instances-test: all $(B)/tests/integration/test_pg_instances
	@FXB_BROKER=$(abspath $(B)/fixture-broker) \
		sh tests/run-suites.sh integration $(B)/tests/integration/test_pg_instances
