# ---- the drain, timed (tests/bench/drain.py) ----------------------------------------------
# bench-drain times a draining broker's exit after its last lease is released against
# SIGTERM with drain_timeout_ms 0; it runs the Python SDK from its virtual environment.
# The drain's tests run with the suites: tests/integration/test_drain.c (integration) and
# each SDK's drain test (py-test, js-unit, go-test).

.PHONY: bench-drain
bench-drain: $(B)/fixture-broker $(SDK_PY_VENV)/.package
	@FXB_BROKER=$(abspath $(B)/fixture-broker) $(SDK_PY_VENV)/bin/python tests/bench/drain.py
