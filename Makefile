# Fixture Broker: `make run` starts the broker, `make test` builds and runs every test.
#
# Everything is built under build/. `make deps` installs the Debian packages the build
# needs (deploy/install-deps.sh, apt-get as root). `make test` and `make run` run it first,
# so the two commands work on a fresh machine; every other target only checks with
# pkg-config that the libraries are there, and if not names them and the command to run.
#
# CC, CPPFLAGS, CFLAGS and LDFLAGS are the usual ones (make's default CC is cc). Warnings
# are errors unless WERROR is set empty (`make WERROR=`); `make test` keeps the default.

PREFIX  ?= /usr/local
VERSION := 0.1.0
# libfxb.so.$(VERSION) is the library; programs linked with -lfxb load it by its soname.
SONAME  := libfxb.so.$(firstword $(subst ., ,$(VERSION)))
PKGS    := libwebsockets jansson libpq openssl
SDK_PKGS := jansson openssl

WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
WERROR  ?= -Werror
CFLAGS  ?= -O2 -g
BASE_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(WERROR) $(CPPFLAGS) $(CFLAGS) -fPIC \
	-DFXB_VERSION_STR='"$(VERSION)"'
# Each object also writes a .d file naming the headers it includes (read below).
DEPFLAGS := -MMD -MP
# The broker and the unit suites (which may also test the SDK's internals); libfxb sees
# only its own headers, jansson and OpenSSL (which the programs linked with it need too).
ALL_CFLAGS = $(BASE_CFLAGS) -Ibroker -Isdk-c/include $(shell pkg-config --cflags $(PKGS))
SDK_CFLAGS = $(BASE_CFLAGS) -Isdk-c/include $(shell pkg-config --cflags $(SDK_PKGS))
# Programs linked against libfxb: the examples and the integration suites and benchmarks.
CLIENT_CFLAGS = $(BASE_CFLAGS) -Isdk-c/include $(shell pkg-config --cflags $(PKGS))
LIBS    = $(LDFLAGS) $(shell pkg-config --libs $(PKGS)) -lev -Wl,--export-dynamic-symbol=ev_timer_start \
	-lpthread -lm
SDK_LIBS = $(LDFLAGS) $(shell pkg-config --libs $(SDK_PKGS)) -lpthread
TLIBS   = $(LIBS) -lcriterion

B := build

BROKER_SRC := $(filter-out broker/main.c,$(shell find broker -name '*.c' | sort))
BROKER_OBJ := $(BROKER_SRC:%.c=$(B)/obj/%.o)
SDK_SRC    := $(wildcard sdk-c/src/*.c)
SDK_OBJ    := $(SDK_SRC:%.c=$(B)/obj/%.o)
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
UNIT_BIN   := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/unit/%)
ITEST_SRC  := $(wildcard tests/integration/test_*.c)
ITEST_BIN  := $(ITEST_SRC:tests/integration/%.c=$(B)/tests/integration/%)
ITEST_LIB  := $(filter-out $(ITEST_SRC),$(wildcard tests/integration/*.c))
BENCH_SRC  := $(wildcard tests/bench/bench_*.c)
BENCH_BIN  := $(BENCH_SRC:tests/bench/%.c=$(B)/tests/bench/%)
EXAMPLES   := $(patsubst sdk-c/examples/%.c,$(B)/examples/%,$(wildcard sdk-c/examples/*.c))
DEPS       := $(patsubst %.o,%.d,$(BROKER_OBJ) $(B)/obj/broker/main.o $(SDK_OBJ))

.PHONY: all deps check-deps check-test-deps run test unit integration asan bench clean \
	install uninstall install-check examples layers FORCE
.DELETE_ON_ERROR:

all: check-deps $(B)/fixture-broker $(B)/libfxb.a $(B)/libfxb.so $(B)/$(SONAME) $(B)/fxb.pc

deps:
	@sh deploy/install-deps.sh

# The goals that install what is missing before they build.
INSTALL_DEPS := $(filter test run,$(MAKECMDGOALS))

# $(call check_pkgs,PKG...): fails naming the pkg-config packages that are not installed.
check_pkgs = @command -v pkg-config >/dev/null || { \
		echo "make: pkg-config is missing; install the build dependencies with: sudo make deps" >&2; \
		exit 1; }; \
	missing=$$(for p in $(1); do pkg-config --exists $$p || printf ' %s' $$p; done); \
	[ -z "$$missing" ] || { \
		echo "make: missing libraries (pkg-config):$$missing" >&2; \
		echo "make: install them with: sudo make deps" >&2; \
		exit 1; }

# Every compile waits for these (order-only: they never make anything out of date).
check-deps: $(if $(INSTALL_DEPS),deps)
	$(call check_pkgs,$(PKGS))

check-test-deps: check-deps
	$(call check_pkgs,criterion)

$(B)/obj/broker/%.o: broker/%.c | check-deps
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(ALL_CFLAGS) $(DEPFLAGS) -c $< -o $@

$(B)/obj/sdk-c/%.o: sdk-c/%.c | check-deps
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(SDK_CFLAGS) $(DEPFLAGS) -c $< -o $@

-include $(DEPS)

# .incbin'd, so the compiler's dependency list does not name it.
$(B)/obj/broker/api/openrpc.o: protocol/openrpc.json

$(B)/fixture-broker: $(B)/obj/broker/main.o $(BROKER_OBJ)
	@echo "  LINK    $@"
	@$(CC) $(ALL_CFLAGS) -o $@ $^ $(LIBS)

$(B)/libfxb.a: $(SDK_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(B)/libfxb.so.$(VERSION): $(SDK_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -shared -Wl,-soname,$(SONAME) -o $@ $^ $(SDK_LIBS)

# The names the library is found by: the soname when a program starts, libfxb.so when
# one is linked with -lfxb.
$(B)/$(SONAME) $(B)/libfxb.so: $(B)/libfxb.so.$(VERSION)
	ln -sf $(notdir $<) $@

# fxb.pc names PREFIX, so it is made again when PREFIX or VERSION is not the last build's
# (pc-vars changes only then).
$(B)/fxb.pc: sdk-c/fxb.pc.in $(B)/pc-vars
	@mkdir -p $(dir $@)
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' $< > $@

$(B)/pc-vars: FORCE
	@mkdir -p $(dir $@)
	@echo '$(PREFIX) $(VERSION)' | cmp -s - $@ || echo '$(PREFIX) $(VERSION)' > $@

examples: $(EXAMPLES)

$(B)/examples/%: sdk-c/examples/%.c $(B)/libfxb.a | check-test-deps
	@mkdir -p $(dir $@)
	$(CC) $(CLIENT_CFLAGS) -o $@ $< $(B)/libfxb.a $(SDK_LIBS) -lcriterion

# The SDK's WebSocket codec links alone: ws.o, no broker (an explicit rule wins over the
# pattern below).
$(B)/tests/unit/test_sdk_ws: tests/unit/test_sdk_ws.c sdk-c/src/ws.h $(B)/obj/sdk-c/src/ws.o | check-test-deps
	@mkdir -p $(dir $@)
	$(CC) -Isdk-c/src $(ALL_CFLAGS) -o $@ $< $(B)/obj/sdk-c/src/ws.o -lcriterion

# A unit suite links the broker objects UNIT_OBJ_<suite> names (paths under broker/
# without .c), or all of them when it names none. A suite of a leaf module links that
# module and what it calls, so a call from it into a higher layer fails the link. A
# suite with a rule of its own (a test_sdk_ws linking libfxb's objects, say) keeps it:
# an explicit rule wins over this pattern.
UNIT_OBJ_test_idmap    := util/idmap
UNIT_OBJ_test_addr     := util/addr
UNIT_OBJ_test_config   := core/config core/errors core/log
UNIT_OBJ_test_instance := core/instance core/clock core/errors core/fsutil
UNIT_OBJ_test_pg_conf  := fixtures/pg/pg_conf core/errors
UNIT_OBJ_test_ports    := ports/ports core/errors core/log
UNIT_OBJ_test_tenant   := tenant/tenant core/errors
UNIT_OBJ_test_template := fixtures/server/template util/addr core/errors
UNIT_OBJ_test_servers  := fixtures/server/template util/addr util/ring core/errors
unit_obj = $(if $(UNIT_OBJ_$1),$(UNIT_OBJ_$1:%=$(B)/obj/broker/%.o),$(BROKER_OBJ))

.SECONDEXPANSION:
$(B)/tests/unit/%: tests/unit/%.c $(wildcard tests/unit/*.h) $$(call unit_obj,$$*) \
		| check-test-deps
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(filter %.o,$^) $(TLIBS)

$(B)/tests/integration/%: tests/integration/%.c $(ITEST_LIB) $(wildcard tests/integration/*.h) \
		$(B)/libfxb.a | check-test-deps
	@mkdir -p $(dir $@)
	$(CC) $(CLIENT_CFLAGS) -Itests/integration -o $@ $< $(ITEST_LIB) $(B)/libfxb.a $(TLIBS)

# Real servers the server-fixture suites and benchmarks lease (tests/servers/).
TEST_SERVERS := $(B)/tests/servers/httpd
TEST_SERVERS_ENV = FXB_TEST_SERVERS=$(abspath $(B)/tests/servers) \
	FXB_NODE_SERVER=$(abspath tests/servers/server.mjs)

$(B)/tests/servers/%: tests/servers/%.c | check-deps
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -o $@ $< $(LDFLAGS)

$(B)/tests/bench/%: tests/bench/%.c $(ITEST_LIB) $(wildcard tests/bench/*.h tests/integration/*.h) \
		$(B)/libfxb.a | check-test-deps
	@mkdir -p $(dir $@)
	$(CC) $(CLIENT_CFLAGS) -Itests/integration -o $@ $< $(ITEST_LIB) $(B)/libfxb.a $(TLIBS) -lm

run: deps all
	$(B)/fixture-broker $(ARGS)

# Calls between the broker's folders must not form a cycle nor go up tests/layers/order:
# tests/layers/check.sh reads the objects' symbols, after test_check.sh has run it on trees
# whose answer is known. Objects whose source is gone (moved or removed) are deleted first
# so they add no stale edges.
layers: $(B)/obj/broker/main.o $(BROKER_OBJ)
	@CC="$(CC)" sh tests/layers/test_check.sh
	@for o in $$(find $(B)/obj/broker -name '*.o'); do \
		case " $^ " in *" $$o "*) continue ;; esac; \
		echo "layers: removing $$o, its source is gone"; rm -f "$$o" "$${o%.o}.d"; \
	done
	@sh tests/layers/check.sh $(B)/obj/broker --order tests/layers/order

# Unit suites drive the modules in-process; integration suites start the real broker
# binary on 127.0.0.1 with port 0 and talk to it through libfxb and raw sockets; js runs
# the Node SDK's suites (node --test, Jest, Vitest) against it; py-test runs the Python
# SDK's suite, and portserver-test drives the portserver protocol with portpicker from PyPI.
test: deps layers unit install-check integration py-test portserver-test multihost-test js

unit: all $(UNIT_BIN)
	@sh tests/run-suites.sh unit $(UNIT_BIN)

integration: all $(ITEST_BIN) examples $(TEST_SERVERS)
	@FXB_BROKER=$(abspath $(B)/fixture-broker) FXB_EXAMPLES=$(abspath $(B)/examples) \
		$(TEST_SERVERS_ENV) sh tests/run-suites.sh integration $(ITEST_BIN)

# The unit and integration suites again, with the broker, libfxb and the tests built
# with AddressSanitizer and UndefinedBehaviorSanitizer; any report stops the process.
asan:
	@UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 $(MAKE) --no-print-directory \
		B=$(B)/asan CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer" \
		unit integration

bench: all $(BENCH_BIN) $(TEST_SERVERS)
	@FXB_BROKER=$(abspath $(B)/fixture-broker) $(TEST_SERVERS_ENV) sh tests/bench/run.sh $(BENCH_BIN)

# make install (DESTDIR and PREFIX as usual) puts these under $(DESTDIR)$(PREFIX), and
# make uninstall removes exactly these. As root with no DESTDIR, both run ldconfig, so a
# program linked with -lfxb finds libfxb.so.0 at once (Debian's ld.so.conf has
# /usr/local/lib; another PREFIX needs its lib/ there or in LD_LIBRARY_PATH).
INSTALLED := bin/fixture-broker lib/libfxb.a lib/libfxb.so.$(VERSION) lib/$(SONAME) \
	lib/libfxb.so include/fxb.h lib/pkgconfig/fxb.pc
LDCONFIG = if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && command -v ldconfig >/dev/null; \
	then ldconfig; fi

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include
	install -m 755 $(B)/fixture-broker $(DESTDIR)$(PREFIX)/bin/fixture-broker
	install -m 644 $(B)/libfxb.a $(DESTDIR)$(PREFIX)/lib/libfxb.a
	install -m 755 $(B)/libfxb.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libfxb.so.$(VERSION)
	ln -sf libfxb.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/$(SONAME)
	ln -sf libfxb.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libfxb.so
	install -m 644 sdk-c/include/fxb.h $(DESTDIR)$(PREFIX)/include/fxb.h
	install -m 644 $(B)/fxb.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/fxb.pc
	@$(LDCONFIG)

uninstall:
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/,$(INSTALLED))
	@$(LDCONFIG)

# Installs into $(B)/install-check/root, checks that exactly INSTALLED is there, builds a
# program with pkg-config --cflags --libs fxb against it, checks that it needs the soname
# and runs it with LD_LIBRARY_PATH (it must start and call into libfxb); then uninstalls
# and checks that no file is left.
IC := $(B)/install-check
IC_ROOT = $(abspath $(IC))/root

define IC_PROGRAM
#include <fxb.h>
#include <stdio.h>

int main(void)
{
	struct fxb_options o = { .url = "not-a-url" };
	struct fxb_client *c;
	char err[256] = "";
	int rc = fxb_client_new(&c, &o, err, sizeof err);

	printf("install-check: libfxb %s answers: %s\n", FXB_VERSION, err);
	return rc == FXB_EINVAL ? 0 : 1;
}
endef
export IC_PROGRAM

install-check: all
	@rm -rf $(IC) && mkdir -p $(IC)
	$(MAKE) -s --no-print-directory install DESTDIR=$(IC_ROOT)
	@cd $(IC_ROOT)$(PREFIX) && find . ! -type d | sed 's|^\./||' | sort > $(abspath $(IC))/found && \
		printf '%s\n' $(INSTALLED) | sort | diff -u - $(abspath $(IC))/found >&2 || \
		{ echo "install-check: make install did not install exactly INSTALLED" >&2; exit 1; }
	@printf '%s\n' "$$IC_PROGRAM" > $(IC)/prog.c
	@export PKG_CONFIG_PATH=$(IC_ROOT)$(PREFIX)/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$(IC_ROOT) && \
		$(CC) $(CPPFLAGS) $(CFLAGS) $$(pkg-config --cflags fxb) -o $(IC)/prog $(IC)/prog.c \
			$(LDFLAGS) $$(pkg-config --libs fxb)
	@readelf -d $(IC)/prog | grep -q 'NEEDED.*\[$(SONAME)\]' || \
		{ echo "install-check: $(IC)/prog does not load $(SONAME)" >&2; exit 1; }
	@LD_LIBRARY_PATH=$(IC_ROOT)$(PREFIX)/lib $(IC)/prog
	$(MAKE) -s --no-print-directory uninstall DESTDIR=$(IC_ROOT)
	@left=$$(find $(IC_ROOT) ! -type d); [ -z "$$left" ] || \
		{ echo "install-check: make uninstall left:" $$left >&2; exit 1; }
	@echo "install-check: make install, a program linked with -lfxb, make uninstall: all right"

clean:
	rm -rf $(B)

# ---- sdk-js: the Node client (npm package fixture-broker) --------------------------------
# `make js` runs all of it against build/fixture-broker: js-unit (node --test suites), js-types
# (index.d.ts compiles), js-jest (the Jest suite with workers, then in band), js-vitest and
# js-example (the express-pg example suite, below).
# js-deps runs `npm ci` only when sdk-js/node_modules is missing or older than the lock file.
# The suites start private brokers (FIXTURE_BROKER_WARM=0): a warm one would outlive make test.
JS_ENV := FIXTURE_BROKER_BIN=$(abspath $(B)/fixture-broker) FIXTURE_BROKER_WARM=0
JS_BIN := node_modules/.bin

.PHONY: js js-deps js-unit js-types js-jest js-vitest

js: js-unit js-types js-jest js-vitest js-example

js-deps: sdk-js/node_modules/.package-lock.json

sdk-js/node_modules/.package-lock.json: sdk-js/package-lock.json
	cd sdk-js && npm ci --no-audit --no-fund
	@touch $@

js-unit: $(B)/fixture-broker js-deps
	cd sdk-js && $(JS_ENV) node --test test/*.test.mjs

js-types: js-deps
	cd sdk-js && $(JS_BIN)/tsc -p test/types

# In band, a handle left open would keep Jest from exiting: the timeout turns that into a failure.
js-jest: $(B)/fixture-broker js-deps
	cd sdk-js && $(JS_ENV) node $(JS_BIN)/jest --config test/jest-suite/jest.config.cjs --maxWorkers=3
	cd sdk-js && $(JS_ENV) timeout 300 node $(JS_BIN)/jest --config test/jest-suite/jest.config.cjs --runInBand

js-vitest: $(B)/fixture-broker js-deps
	cd sdk-js && $(JS_ENV) node $(JS_BIN)/vitest run --config test/vitest-suite/vitest.config.mjs
# ---- end of sdk-js -------------------------------------------------------------------------

# ---- sdk-js example: examples/express-pg, an Express + PostgreSQL API and its Jest suite ------
# The example is a project of its own with Jest 30 (its package.json and lock file), into which
# mk/js-npm.mk installs the packed package. js-example runs the suite against
# build/fixture-broker with 4 workers, then in band. It runs
# from the example's directory, as a user would: the preset's global setup starts a broker
# there with the example's fixture-broker.json, whose relative paths are the broker's working
# directory's. The workers run gets an empty Jest cache, or Jest would run the files in band
# anyway once cached timings say that each is fast. The broker's state (its embedded
# PostgreSQL cluster) is kept in build/js-example-state across runs, and its ports come from a
# range of their own, clear of a broker already running on the default one. js-example-bench
# (part of `make bench`) times the suite in band and with workers against its "before" version.
JS_EXAMPLE_DIR := sdk-js/examples/express-pg
JS_EXAMPLE_ENV := $(JS_ENV) \
	FIXTURE_BROKER_ARGS="--state-dir $(abspath $(B))/js-example-state --ports 28300-28699"
JS_EXAMPLE_JEST := node node_modules/.bin/jest

.PHONY: js-example js-example-bench

js-example: $(B)/fixture-broker js-deps
	cd $(JS_EXAMPLE_DIR) && cache=$$(mktemp -d) && \
		$(JS_EXAMPLE_ENV) timeout 300 $(JS_EXAMPLE_JEST) --maxWorkers=4 --cacheDirectory "$$cache"; \
		status=$$?; rm -rf "$$cache"; exit $$status
	cd $(JS_EXAMPLE_DIR) && $(JS_EXAMPLE_ENV) timeout 300 $(JS_EXAMPLE_JEST) --runInBand

js-example-bench: $(B)/fixture-broker js-deps
	cd sdk-js && $(JS_EXAMPLE_ENV) node bench/example-suite.mjs

bench: js-example-bench

# 8 Node processes taking ports through the SDK against get-port in the same processes.
.PHONY: js-ports-bench
js-ports-bench: $(B)/fixture-broker js-deps
	cd sdk-js && $(JS_ENV) node bench/ports-vs-get-port.mjs

bench: js-ports-bench
# ---- end of the sdk-js example ---------------------------------------------------------------

# ---- portpicker's portserver protocol (broker/net/portserver.c) ---------------------------
# The suite runs real portpicker processes against the real broker, with pytest, in a
# virtual environment under build/ made from the pinned tests/portserver/requirements.txt
# (made again when that file changes).
PY_VENV := $(B)/venv

.PHONY: portserver-test

$(PY_VENV)/.installed: tests/portserver/requirements.txt
	rm -rf $(PY_VENV)
	python3 -m venv $(PY_VENV)
	$(PY_VENV)/bin/pip install --quiet --disable-pip-version-check -r $<
	@touch $@

portserver-test: $(B)/fixture-broker $(PY_VENV)/.installed
	FXB_BROKER=$(abspath $(B)/fixture-broker) timeout 300 $(PY_VENV)/bin/python -m pytest \
		-q -p no:cacheprovider tests/portserver

# ---- the Python SDK (sdk-py/) -------------------------------------------------------------
# Its pytest suite runs against the real broker, in a virtual environment under $(B) made
# from the pinned sdk-py/requirements-test.txt (made again when that file or the package's
# pyproject.toml changes). The package is installed as a user would install it, not in
# editable mode, and installed again whenever its sources change. tests/test_pytest_plugin.py
# runs inner pytest suites (with and without xdist) on the plugin; the brokers it starts keep
# their PostgreSQL state in $(B)/py-plugin-state across runs. py-example (mk/py-example.mk)
# runs the plugin's example.
SDK_PY_VENV := $(B)/py-venv
SDK_PY_SRC := $(wildcard sdk-py/src/fixture_broker/*)

.PHONY: py-test

$(SDK_PY_VENV)/.requirements: sdk-py/requirements-test.txt sdk-py/pyproject.toml
	rm -rf $(SDK_PY_VENV)
	python3 -m venv $(SDK_PY_VENV)
	$(SDK_PY_VENV)/bin/pip install --quiet --disable-pip-version-check -r sdk-py/requirements-test.txt
	@touch $@

$(SDK_PY_VENV)/.package: $(SDK_PY_VENV)/.requirements $(SDK_PY_SRC) sdk-py/README.md
	$(SDK_PY_VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps \
		--no-build-isolation ./sdk-py
	rm -rf sdk-py/build sdk-py/src/*.egg-info
	@touch $@

py-test: $(B)/fixture-broker $(SDK_PY_VENV)/.package
	FIXTURE_BROKER_BIN=$(abspath $(B)/fixture-broker) FXB_PY_PLUGIN_STATE=$(abspath $(B))/py-plugin-state \
		timeout 300 $(SDK_PY_VENV)/bin/python -m pytest -q -p no:cacheprovider sdk-py/tests
# ---- end of the Python SDK ----------------------------------------------------------------

include mk/py-example.mk
include mk/go.mk
include mk/multihost.mk
include mk/clients-bench.mk
include mk/integresql.mk
include mk/tls-bench.mk
include mk/dist.mk
include mk/js-npm.mk
include mk/bench-loop.mk
include mk/deploy.mk
include mk/tenants.mk
include mk/fuzz.mk
include mk/fleet.mk
include mk/forward.mk
include mk/drain.mk
include mk/instances.mk
include mk/forward-dns.mk
