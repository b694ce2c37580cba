# ---- the broker seen from other hosts (tests/multihost/) ----------------------------------
# Network namespaces and veth pairs the suite makes (root only: elsewhere it says why and
# is skipped), the real broker in one, workers running the real Python client in two
# others; and liveness on one host (test_liveness.py, no root needed). It uses the Python
# SDK's virtual environment.
.PHONY: multihost-test

multihost-test: $(B)/fixture-broker $(TEST_SERVERS) $(SDK_PY_VENV)/.package
	FXB_BROKER=$(abspath $(B)/fixture-broker) $(TEST_SERVERS_ENV) timeout 300 \
		$(SDK_PY_VENV)/bin/python -m pytest -q -rs -p no:cacheprovider tests/multihost
