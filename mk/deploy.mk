# ---- deploy/: the container image, the Kubernetes manifests, the systemd unit -------------
# deploy-check (part of `make test`, no container engine or cluster needed):
#   - deploy/k8s/render (Go: kustomize's library, then strict decoding into the Kubernetes
#     API's Go types) renders every kustomization in deploy/k8s with stand-in Secret files,
#     and deploy/check/k8s.mjs validates the objects against Kubernetes' schemas with the
#     npm package kubernetes-models, plus the workload rules deploy/README.md promises;
#   - deploy/check/dockerfile.mjs lints deploy/Dockerfile (dockerfile-utils) and checks its
#     stages (dockerfile-ast), including that the runtime stage installs every Debian
#     package that build/fixture-broker links (readelf -d, dpkg -S);
#   - deploy/check/test: the same checks on deliberately broken copies must fail.
# `make image` builds the image with docker (or podman), where an engine is reachable.
# install-check-service (part of install-check) tests `make install`'s unit and
# configuration in a DESTDIR.
DEPLOY_CHECK := $(B)/deploy-check
DEPLOY_RENDER := $(B)/deploy/render
IMAGE ?= fixture-broker:$(VERSION)
ENGINE ?= $(shell command -v docker || command -v podman)

.PHONY: deploy-check deploy-check-deps image install-service uninstall-service install-check-service

deploy-check-deps: deploy/check/node_modules/.package-lock.json

deploy/check/node_modules/.package-lock.json: deploy/check/package-lock.json
	cd deploy/check && npm ci --no-audit --no-fund
	@touch $@

$(DEPLOY_RENDER): deploy/k8s/render/main.go deploy/k8s/render/go.mod deploy/k8s/render/go.sum | go-check
	@mkdir -p $(dir $@)
	cd deploy/k8s/render && $(GO) build -o $(abspath $@) .

# The Debian packages of the libraries the broker links, libc6 aside (every image has it),
# and of the libwebsockets event-loop plugin it loads at start (net/loop.c: libev's, which
# no NEEDED entry names).
LWS_EVLIB := /usr/lib/$(shell gcc -print-multiarch)/libwebsockets-evlib_ev.so
$(B)/deploy/needs: $(B)/fixture-broker
	@mkdir -p $(dir $@)
	@rm -f $@.new; for lib in $$(readelf -d $< | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do \
		path=$$(ldd $< | awk -v l=$$lib '$$1 == l { print $$3 }'); real=$$(readlink -f "$$path"); \
		pkg=$$(for p in "$$path" "$$real" "/usr$$path" "$${real#/usr}"; do \
			dpkg -S "$$p" 2>/dev/null | sed -n '1s/:.*//p'; done | head -n 1); \
		[ -n "$$pkg" ] || { echo "deploy-check: no Debian package has $$lib ($$path)" >&2; exit 1; }; \
		echo "$$pkg" >> $@.new; \
	done
	@dpkg -S "$(LWS_EVLIB)" | sed -n '1s/:.*//p' >> $@.new
	@grep -vx libc6 $@.new | sort -u | paste -sd, > $@ && rm -f $@.new
	@echo "deploy-check: the broker links the packages $$(cat $@)"

deploy-check: $(DEPLOY_RENDER) $(B)/deploy/needs deploy-check-deps
	sh deploy/check/k8s-check.sh deploy/k8s $(DEPLOY_CHECK)/k8s $(abspath $(DEPLOY_RENDER))
	node deploy/check/dockerfile.mjs deploy/Dockerfile --needs $$(cat $(B)/deploy/needs)
	RENDER=$(abspath $(DEPLOY_RENDER)) NEEDS=$$(cat $(B)/deploy/needs) \
		node --test --test-reporter=spec deploy/check/test/

test: deploy-check

image:
	@[ -n "$(ENGINE)" ] || { echo "make image: no container engine (docker or podman) on PATH" >&2; exit 1; }
	@$(ENGINE) info >/dev/null 2>&1 || { \
		echo "make image: $(ENGINE) is here but reaches no container engine (no daemon running?): cannot build $(IMAGE)" >&2; \
		echo "make image: deploy-check (part of make test) checks deploy/Dockerfile without one" >&2; exit 1; }
	$(ENGINE) build -f deploy/Dockerfile -t $(IMAGE) .

# make install also installs the unit (PREFIX/lib/systemd/system, PREFIX filled in), the
# user (PREFIX/lib/sysusers.d), deploy/README.md, and /etc/fixture-broker's configuration
# (deploy/install-config.sh: never overwritten; uninstall removes it only if unchanged).
# As root with no DESTDIR, it also makes the user with systemd-sysusers where there is one.
INSTALLED += lib/systemd/system/fixture-broker.service lib/sysusers.d/fixture-broker.conf \
	share/doc/fixture-broker/README.md share/fixture-broker/conffiles.sha256

install: install-service
uninstall: uninstall-service

install-service:
	install -d $(DESTDIR)$(PREFIX)/lib/systemd/system $(DESTDIR)$(PREFIX)/lib/sysusers.d \
		$(DESTDIR)$(PREFIX)/share/doc/fixture-broker
	sed 's|@PREFIX@|$(PREFIX)|g' deploy/fixture-broker.service \
		> $(DESTDIR)$(PREFIX)/lib/systemd/system/fixture-broker.service
	chmod 644 $(DESTDIR)$(PREFIX)/lib/systemd/system/fixture-broker.service
	install -m 644 deploy/fixture-broker.sysusers $(DESTDIR)$(PREFIX)/lib/sysusers.d/fixture-broker.conf
	install -m 644 deploy/README.md $(DESTDIR)$(PREFIX)/share/doc/fixture-broker/README.md
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && command -v systemd-sysusers >/dev/null; then \
		systemd-sysusers $(PREFIX)/lib/sysusers.d/fixture-broker.conf; fi
	sh deploy/install-config.sh install "$(DESTDIR)" $(PREFIX) deploy

uninstall-service:
	sh deploy/install-config.sh uninstall "$(DESTDIR)" $(PREFIX)

# In $(B)/install-check-service/root: a first install writes the configuration, the unit
# names PREFIX's broker, and the real broker starts with the installed config.json and
# tokens; edited configuration survives a second install and an uninstall, unedited
# configuration does not survive an uninstall; systemd-analyze verify (where there is one)
# finds nothing to say about the installed unit, and does about a broken copy.
ICS := $(B)/install-check-service
ICS_ROOT = $(abspath $(ICS))/root
ICS_ETC = $(ICS_ROOT)/etc/fixture-broker

install-check: install-check-service

install-check-service: all
	@rm -rf $(ICS) && mkdir -p $(ICS)
	@$(MAKE) -s --no-print-directory install DESTDIR=$(ICS_ROOT) > $(ICS)/install.log
	@for f in config.json config.json.README tokens; do [ -f $(ICS_ETC)/$$f ] || \
		{ echo "install-check-service: no /etc/fixture-broker/$$f" >&2; exit 1; }; done
	@[ "$$(stat -c %a $(ICS_ETC)/tokens)" = 640 ] || \
		{ echo "install-check-service: tokens is mode $$(stat -c %a $(ICS_ETC)/tokens), not 640" >&2; exit 1; }
	@[ "$$(grep -vc '^#' $(ICS_ETC)/tokens)" = 1 ] && grep -qxE '[0-9a-f]{64}' $(ICS_ETC)/tokens || \
		{ echo "install-check-service: tokens does not hold one random token" >&2; exit 1; }
	@unit=$(ICS_ROOT)$(PREFIX)/lib/systemd/system/fixture-broker.service; \
		grep -qx 'ExecStart=$(PREFIX)/bin/fixture-broker --config $${CONFIGURATION_DIRECTORY}/config.json --state-dir $${STATE_DIRECTORY}' $$unit && \
		! grep -q @PREFIX@ $$unit || { echo "install-check-service: $$unit does not start $(PREFIX)/bin/fixture-broker" >&2; exit 1; }
	@# The installed config.json and tokens as the broker reads them: it must start.
	@mkdir -p $(ICS)/state && (timeout 20 $(ICS_ROOT)$(PREFIX)/bin/fixture-broker \
		--config $(ICS_ETC)/config.json --token-file $(ICS_ETC)/tokens --listen 127.0.0.1:0 \
		--state-dir $(abspath $(ICS))/state --port-lock-file none > $(ICS)/broker.out 2> $(ICS)/broker.err & \
		pid=$$!; i=0; until grep -q '^listening ws://' $(ICS)/broker.out; do \
			i=$$((i + 1)); if [ $$i -gt 100 ] || ! kill -0 $$pid 2>/dev/null; then \
				cat $(ICS)/broker.err >&2; echo "install-check-service: the broker did not start with the installed configuration" >&2; \
				kill $$pid 2>/dev/null; exit 1; fi; sleep 0.1; done; \
		kill -TERM $$pid; wait $$pid) || { echo "install-check-service: the broker did not stop cleanly" >&2; exit 1; }
	@echo '# edited' >> $(ICS_ETC)/config.json.README && echo 'a-token-of-mine' >> $(ICS_ETC)/tokens && \
		cp $(ICS_ETC)/config.json.README $(ICS_ETC)/tokens $(ICS)/
	@$(MAKE) -s --no-print-directory install DESTDIR=$(ICS_ROOT) > $(ICS)/install2.log
	@cmp -s $(ICS)/tokens $(ICS_ETC)/tokens && cmp -s $(ICS)/config.json.README $(ICS_ETC)/config.json.README || \
		{ echo "install-check-service: a second make install overwrote edited configuration" >&2; exit 1; }
	@$(MAKE) -s --no-print-directory uninstall DESTDIR=$(ICS_ROOT) > $(ICS)/uninstall.log
	@left=$$(cd $(ICS_ROOT) && find . ! -type d | sort | tr '\n' ' '); \
		[ "$$left" = "./etc/fixture-broker/config.json.README ./etc/fixture-broker/tokens " ] || \
		{ echo "install-check-service: after editing config.json.README and tokens, make uninstall left: $$left" >&2; exit 1; }
	@rm -rf $(ICS_ROOT) && $(MAKE) -s --no-print-directory install DESTDIR=$(ICS_ROOT) > $(ICS)/install3.log && \
		$(MAKE) -s --no-print-directory uninstall DESTDIR=$(ICS_ROOT) > $(ICS)/uninstall3.log
	@left=$$(find $(ICS_ROOT) ! -type d); [ -z "$$left" ] || \
		{ echo "install-check-service: make uninstall left unchanged files:" $$left >&2; exit 1; }
	@$(MAKE) -s --no-print-directory install DESTDIR=$(ICS_ROOT) > $(ICS)/install4.log
	@if ! command -v systemd-analyze >/dev/null; then \
		echo "install-check-service: no systemd-analyze here: skipped systemd-analyze verify"; \
	else \
		sed 's|^ExecStart=$(PREFIX)|ExecStart=$(ICS_ROOT)$(PREFIX)|' \
			$(ICS_ROOT)$(PREFIX)/lib/systemd/system/fixture-broker.service > $(ICS)/fixture-broker.service && \
		out=$$(systemd-analyze verify $(ICS)/fixture-broker.service 2>&1) && [ -z "$$out" ] || \
			{ echo "$$out" >&2; echo "install-check-service: systemd-analyze verify fixture-broker.service" >&2; exit 1; }; \
		mkdir -p $(ICS)/broken && sed 's|^ProtectHome=read-only|ProtectHome=readonly|' $(ICS)/fixture-broker.service \
			> $(ICS)/broken/fixture-broker.service && \
		out=$$(systemd-analyze verify $(ICS)/broken/fixture-broker.service 2>&1); \
		echo "$$out" | grep -q 'ProtectHome\|protect home' || \
			{ echo "install-check-service: systemd-analyze verify did not object to a broken unit: $$out" >&2; exit 1; }; \
		echo "install-check-service: systemd-analyze verify: the unit is clean, a broken copy is not"; \
	fi
	@$(MAKE) -s --no-print-directory uninstall DESTDIR=$(ICS_ROOT) > $(ICS)/uninstall4.log
	@echo "install-check-service: unit, user, configuration installed; edited configuration kept; nothing else left"
# ---- end of deploy/ ---------------------------------------------------------------------------
