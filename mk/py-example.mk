# ---- sdk-py example: examples/notes-flask, a Flask + PostgreSQL app and its pytest suite ----
# py-example runs the suite with the fixture-broker pytest plugin, from the example's directory
# as a user would, with 4 xdist workers and then in one process (-n 0), in the venv py-test
# makes (the package installed, not editable). With FIXTURE_BROKER_URL unset the plugin starts
# build/fixture-broker for each run and stops it at the end. The broker's state (its embedded
# PostgreSQL cluster) is kept in build/py-example-state across runs, and its ports come from a
# range of their own, clear of a broker already running on the default one.
PY_EXAMPLE_DIR := sdk-py/examples/notes-flask
PY_EXAMPLE_ENV := FIXTURE_BROKER_BIN=$(abspath $(B)/fixture-broker) \
	FIXTURE_BROKER_ARGS="--state-dir $(abspath $(B))/py-example-state --ports 29300-29499"
PY_EXAMPLE_PYTEST := $(abspath $(SDK_PY_VENV))/bin/python -m pytest -q

.PHONY: py-example

py-example: $(B)/fixture-broker $(SDK_PY_VENV)/.package
	cd $(PY_EXAMPLE_DIR) && unset FIXTURE_BROKER_URL && $(PY_EXAMPLE_ENV) timeout 300 $(PY_EXAMPLE_PYTEST) -n 4
	cd $(PY_EXAMPLE_DIR) && unset FIXTURE_BROKER_URL && $(PY_EXAMPLE_ENV) timeout 300 $(PY_EXAMPLE_PYTEST) -n 0

test: py-example
# ---- end of the sdk-py example -------------------------------------------------------------
