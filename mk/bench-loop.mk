# ---- a worker cut off, timed (tests/bench/linkdown.py) ----------------------------------
# bench-linkdown times a worker cut off in a network namespace (root only; it says so and
# is skipped elsewhere); it runs the Python SDK from its virtual environment.

.PHONY: bench-linkdown
bench-linkdown: $(B)/fixture-broker $(SDK_PY_VENV)/.package
	@FXB_BROKER=$(abspath $(B)/fixture-broker) $(SDK_PY_VENV)/bin/python tests/bench/linkdown.py

bench: bench-linkdown
