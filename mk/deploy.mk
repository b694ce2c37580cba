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
DEPLOY_CHECK := $(B)/deploy-check
DEPLOY_RENDER := $(B)/deploy/render
IMAGE ?= fixture-broker:$(VERSION)
ENGINE ?= $(shell command -v docker || command -v podman)

.PHONY: deploy-check deploy-check-deps image

deploy-check-deps: deploy/check/node_modules/.package-lock.json

deploy/check/node_modules/.package-lock.json: deploy/check/package-lock.json
	cd deploy/check && npm ci --no-audit --no-fund
	@touch $@

$(DEPLOY_RENDER): deploy/k8s/render/main.go deploy/k8s/render/go.mod deploy/k8s/render/go.sum | go-check
	@mkdir -p $(dir $@)
	cd deploy/k8s/render && $(GO) build -o $(abspath $@) .

# The Debian packages of the libraries the broker links, libc6 aside (every image has it).
$(B)/deploy/needs: $(B)/fixture-broker
	@mkdir -p $(dir $@)
	@for lib in $$(readelf -d $< | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do \
		path=$$(ldd $< | awk -v l=$$lib '$$1 == l { print $$3 }'); \
		dpkg -S "$$(readlink -f "$$path")" 2>/dev/null | sed -n '1s/:.*//p' | grep . || \
			{ echo "deploy-check: no Debian package has $$lib ($$path)" >&2; exit 1; }; \
	done | grep -vx libc6 | sort -u | paste -sd, > $@.new && mv $@.new $@
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

# ---- end of deploy/ ---------------------------------------------------------------------------
