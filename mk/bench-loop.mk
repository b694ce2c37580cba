# ---- benchmarks of the event loop and of TLS (tests/bench/) ------------------------------
# bench_tls speaks wss:// through OpenSSL itself (libfxb speaks ws:// only), so it links
# libssl. bench-linkdown times a worker cut off in a network namespace (root only; it says
# so and is skipped elsewhere); it runs the Python SDK from its virtual environment.
$(B)/tests/bench/bench_tls: TLIBS += $(shell pkg-config --libs openssl)

.PHONY: bench-linkdown
bench-linkdown: $(B)/fixture-broker $(SDK_PY_VENV)/.package
	@FXB_BROKER=$(abspath $(B)/fixture-broker) $(SDK_PY_VENV)/bin/python tests/bench/linkdown.py

bench: bench-linkdown
