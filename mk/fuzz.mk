# ---- Fuzzing: libFuzzer harnesses (tests/fuzz/) built with clang -------------------------
# `make fuzz` builds four harnesses with AddressSanitizer and UndefinedBehaviorSanitizer
# (the JSON-RPC layer, the configuration parser, the server templates' placeholder
# parser, libfxb's WebSocket frame codec) and runs each for FUZZ_SECONDS (default 300) on
# its corpus in $(B)/fuzz/corpus/<name>, seeded from protocol/vectors/ by
# tests/fuzz/seeds.py and kept from run to run. `make fuzz-short` (the tail of `make
# test`) runs each for 15 s. A crash stops the run with the input in
# $(B)/fuzz/artifacts/; copy it into tests/fuzz/regressions/<name>/, where every later
# run replays it first (`make fuzz-regressions`).
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 300
FUZZ_NAMES   := rpc config placeholder sdk_frame
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS   = -std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer $(FUZZ_SAN) \
	-DFXB_VERSION_STR='"$(VERSION)"' -Ibroker -Isdk-c/include -Isdk-c/src \
	$(shell pkg-config --cflags $(PKGS))
FUZZ_B       := $(B)/fuzz
FUZZ_BIN     := $(FUZZ_NAMES:%=$(FUZZ_B)/fuzz_%)

# The sources each harness links, instrumented for coverage.
FUZZ_SRC_rpc         := broker/rpc/rpc.c broker/core/config.c broker/core/errors.c \
	broker/core/clock.c broker/core/log.c
FUZZ_SRC_config      := broker/core/config.c broker/core/errors.c broker/core/log.c \
	broker/fixtures/server/template.c broker/util/addr.c
FUZZ_SRC_placeholder := broker/fixtures/server/template.c broker/util/addr.c broker/core/errors.c
FUZZ_SRC_sdk_frame   := sdk-c/src/ws.c

.PHONY: fuzz fuzz-build fuzz-short fuzz-regressions

$(FUZZ_B)/obj/%.o: %.c | check-deps
	@mkdir -p $(dir $@)
	@echo "  FUZZCC  $<"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

.SECONDEXPANSION:
$(FUZZ_B)/fuzz_%: tests/fuzz/fuzz_%.c $$(patsubst %.c,$(FUZZ_B)/obj/%.o,$$(FUZZ_SRC_$$*)) | check-deps
	@mkdir -p $(dir $@)
	@echo "  FUZZLD  $@"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(LIBS)

fuzz-build: $(FUZZ_BIN)

# Replays every saved crash input (and the seeds) once: each must now pass.
fuzz-regressions: fuzz-build
	@rm -rf $(FUZZ_B)/seeds && python3 tests/fuzz/seeds.py $(FUZZ_B)/seeds
	@for n in $(FUZZ_NAMES); do \
		set -- $(FUZZ_B)/seeds/$$n/*; \
		[ -d tests/fuzz/regressions/$$n ] && set -- "$$@" tests/fuzz/regressions/$$n/*; \
		$(FUZZ_B)/fuzz_$$n -runs=0 "$$@" >$(FUZZ_B)/$$n.replay.log 2>&1 || \
			{ tail -40 $(FUZZ_B)/$$n.replay.log >&2; echo "fuzz: $$n fails on a saved input" >&2; exit 1; }; \
		echo "fuzz: $$n: $$# saved inputs replayed"; \
	done

# $(call fuzz_run,SECONDS): each harness for SECONDS on its corpus; prints its figures.
define fuzz_run
	@mkdir -p $(FUZZ_B)/artifacts
	@for n in $(FUZZ_NAMES); do \
		mkdir -p $(FUZZ_B)/corpus/$$n && cp -n $(FUZZ_B)/seeds/$$n/* $(FUZZ_B)/corpus/$$n/; \
		ASAN_OPTIONS=detect_leaks=1 $(FUZZ_B)/fuzz_$$n -max_total_time=$(1) -print_final_stats=1 \
			-max_len=65536 -timeout=10 -rss_limit_mb=2048 -dict=tests/fuzz/json.dict \
			-artifact_prefix=$(abspath $(FUZZ_B))/artifacts/$$n- $(FUZZ_B)/corpus/$$n \
			>$(FUZZ_B)/$$n.log 2>&1 || \
			{ tail -60 $(FUZZ_B)/$$n.log >&2; echo "fuzz: $$n crashed; the input is in $(FUZZ_B)/artifacts/" >&2; exit 1; }; \
		printf 'fuzz: %-12s %s runs in %s s, %s edges covered, corpus %s\n' $$n \
			"$$(sed -n 's/^stat::number_of_executed_units: *//p' $(FUZZ_B)/$$n.log)" $(1) \
			"$$(grep -o 'cov: [0-9]*' $(FUZZ_B)/$$n.log | tail -1 | cut -d' ' -f2)" \
			"$$(ls $(FUZZ_B)/corpus/$$n | wc -l)"; \
	done
endef

fuzz: fuzz-regressions
	$(call fuzz_run,$(FUZZ_SECONDS))

fuzz-short: fuzz-regressions
	$(call fuzz_run,15)

test: fuzz-short
# ---- end of fuzzing ------------------------------------------------------------------------
