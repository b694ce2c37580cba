# ---- make dist: the npm tarballs (fixture-broker and its platform package) ----------------
# $(B)/dist/native/bin/fixture-broker is the broker linked for the npm package:
# libwebsockets, jansson, libcap and libev statically (Debian ships their .a; lws's libev
# plugin is a shared library linked to the shared lws, so this broker is built with
# FXB_LOOP_POLL_ONLY and runs lws's own poll() loop: fine for one machine's test runs, not
# for 10,000 workers), libpq and OpenSSL shared (libpq-dev ships
# libpq.a without the libpgcommon/libpgport it needs, and OpenSSL must be the one libpq
# loads), with an RPATH (DT_RPATH, which also covers the libraries' own dependencies) of
# $ORIGIN/../lib, where deploy/dist/carry-libs.sh copies every library it loads but glibc's.
# sdk-js/scripts/dist.mjs packs @fixture-broker/<os>-<cpu> from them and fixture-broker
# with it and @embedded-postgres/<os>-<cpu> as optional dependencies. Only the build
# machine's platform is built (linux-x64 here; linux-arm64 the same way on an arm64 machine).
# dist-test (part of `make test`) installs the tarballs with plain npm i into a fresh
# project in a mount namespace that hides the checkout, /usr/lib/postgresql and the build's
# shared libraries, and runs a Jest 30 suite there (sdk-js/test/dist/run.sh).
DIST := $(B)/dist
DIST_NATIVE := $(DIST)/native
DIST_STATIC := -lwebsockets -ljansson -lcap -lev
DIST_SHARED := -lpq -lssl -lcrypto -lpthread -ldl -lm

.PHONY: dist dist-test dist-bench

$(DIST_NATIVE)/obj/loop.o: broker/net/loop.c | check-deps
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -DFXB_LOOP_POLL_ONLY -c -o $@ $<

$(DIST_NATIVE)/bin/fixture-broker: $(B)/obj/broker/main.o \
		$(filter-out $(B)/obj/broker/net/loop.o,$(BROKER_OBJ)) $(DIST_NATIVE)/obj/loop.o
	@mkdir -p $(dir $@)
	@echo "  LINK    $@ (for the npm package)"
	@$(CC) $(ALL_CFLAGS) -s -o $@ $^ $(LDFLAGS) -Wl,-Bstatic $(DIST_STATIC) -Wl,-Bdynamic \
		$(DIST_SHARED) -Wl,--disable-new-dtags -Wl,-rpath,'$$ORIGIN/../lib'

$(DIST_NATIVE)/.libs: $(DIST_NATIVE)/bin/fixture-broker deploy/dist/carry-libs.sh
	rm -rf $(DIST_NATIVE)/lib
	sh deploy/dist/carry-libs.sh $< $(DIST_NATIVE)/lib > $@

dist: $(DIST_NATIVE)/.libs
	rm -f $(DIST)/*.tgz
	cd sdk-js && node scripts/dist.mjs --broker $(abspath $(DIST_NATIVE))/bin/fixture-broker \
		--libs $(abspath $(DIST_NATIVE))/lib --out $(abspath $(DIST)) | tee $(abspath $(DIST))/packed.txt

dist-test: dist
	timeout 900 sh sdk-js/test/dist/run.sh $(abspath $(DIST))

dist-bench: dist
	sh sdk-js/test/dist/bench.sh $(abspath $(DIST))

test: dist-test
bench: dist-bench
# ---- end of make dist ----------------------------------------------------------------------
