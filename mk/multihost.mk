# ---- the broker seen from other hosts (tests/multihost/) ----------------------------------
# Network namespaces and veth pairs the suite makes (root only: elsewhere it says why and
# is skipped), the real broker in one, workers running the real Python client in two
# others; and liveness on one host (test_liveness.py, no root needed). It uses the Python
# SDK's virtual environment. test_cuts.py also runs workers of sdk-js (node, from this
# checkout: it needs js-deps) and of libfxb (tests/multihost/*.c, built here against
# libfxb.a into $(B)/tests/multihost/).
.PHONY: multihost-test

MULTIHOST_BIN := $(patsubst tests/multihost/%.c,$(B)/tests/multihost/%,$(wildcard tests/multihost/*.c))

$(B)/tests/multihost/%: tests/multihost/%.c $(B)/libfxb.a | check-deps
	@mkdir -p $(dir $@)
	$(CC) $(CLIENT_CFLAGS) -o $@ $< $(B)/libfxb.a $(SDK_LIBS)

multihost-test: $(B)/fixture-broker $(TEST_SERVERS) $(SDK_PY_VENV)/.package $(MULTIHOST_BIN) js-deps
	FXB_BROKER=$(abspath $(B)/fixture-broker) $(TEST_SERVERS_ENV) \
		FXB_MULTIHOST_BIN=$(abspath $(B)/tests/multihost) timeout 300 \
		$(SDK_PY_VENV)/bin/python -m pytest -q -rs -p no:cacheprovider tests/multihost
