# kagenti-webhook. `make help` lists the targets.
# npm scripts run on the pinned Node 24 from the `node` devDependency (npm puts node_modules/.bin first).

# VERSION from make's command line only: one in the environment (a CI's VERSION variable is often about something
# else) is not used, and make says so, rather than naming a tag that may not exist.
ifeq ($(origin VERSION),environment)
$(shell echo 'make: VERSION=$(VERSION) in the environment is not used (package.json'"'"'s version is); give it on the command line to use it: make ... VERSION=$(VERSION)' >&2)
override VERSION := $(shell node -p "require('./package.json').version" 2>/dev/null || echo 0.1.0)
endif
VERSION        ?= $(shell node -p "require('./package.json').version" 2>/dev/null || echo 0.1.0)
IMG            ?= ghcr.io/kagenti/kagenti-webhook:v$(VERSION)
# The build's git commit (with -dirty for uncommitted changes): build_info's revision label in the image.
REVISION       ?= $(shell git describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)
CONTAINER_TOOL ?= docker
KUBECTL        ?= kubectl
# default (cert-manager), self-signed (certificates from `make certs`), with-network-policy
OVERLAY        ?= default
NAMESPACE      := kagenti-system
SERVICE        := kagenti-webhook
CERTS_DIR      := manifests/self-signed/certs
# IMG=... given on the command line or in the environment, or VERSION=... on the command line (a CI's VERSION variable
# is often about something else): IMG=... or VERSION=..., as given, and
# empty when both are this Makefile's defaults. Given, $(IMG) replaces the webhook's image whatever tag or digest an
# overlay's kustomize `images:` sets; not given, only the base's own reference becomes $(IMG), and an overlay's image
# stays, as `kubectl apply -k` deploys it (manifests/set-image.sh).
IMG_SETTING    := $(if $(filter command environment,$(firstword $(origin IMG))),IMG=$(IMG),$(if $(filter command,$(firstword $(origin VERSION))),VERSION=$(VERSION)))
SET_IMAGE      = manifests/set-image.sh '$(OVERLAY)' '$(IMG)' $(if $(IMG_SETTING),'$(IMG_SETTING)')
# The CLI runs on the pinned Node 24 (node_modules/.bin/node), not whatever `node` the shell has.
CLI            := PATH="$(CURDIR)/node_modules/.bin:$$PATH" node bin/kagenti-webhook.js
# Splits a rendered stream by kind (`make deploy` applies the webhook configurations apart, `make undeploy` keeps the
# Namespace).
FILTER_KINDS   := manifests/filter-kinds.sh
WEBHOOK_KINDS  := MutatingWebhookConfiguration ValidatingWebhookConfiguration
# manifests, deploy and undeploy stop here (deploy and undeploy before they touch the cluster) when OVERLAY names no directory.
CHECK_OVERLAY  := [ -d manifests/$(OVERLAY) ] || { echo "make: there is no overlay manifests/$(OVERLAY): OVERLAY is default, self-signed, with-network-policy or a directory of your own under manifests/; nothing was done" >&2; exit 2; }
# The three steps of `make deploy`; deploy-install and deploy-upgrade run them in their order.
APPLY_ALL_BUT_WEBHOOKS = $(KUBECTL) kustomize manifests/$(OVERLAY) | $(SET_IMAGE) | $(FILTER_KINDS) drop $(WEBHOOK_KINDS) | $(KUBECTL) apply -f -
APPLY_WEBHOOKS         = $(KUBECTL) kustomize manifests/$(OVERLAY) | $(FILTER_KINDS) keep $(WEBHOOK_KINDS) | $(KUBECTL) apply -f -
ROLLOUT                = $(KUBECTL) -n $(NAMESPACE) rollout status deploy/$(SERVICE) --timeout=180s
# Printed by deploy when the running Deployment already runs the image the render names (after $(SET_IMAGE)): kubectl
# apply then changes the manifests and the config, never the code. A newer checkout names the same tag (v$(VERSION),
# package.json's version, or the overlay's), and imagePullPolicy IfNotPresent keeps a node's cached image under it.
SAME_IMAGE_WARNING     = make: warning: deploy/$(SERVICE) already runs $$running, the image this deploy names, so the webhook's code is not upgraded: only changed manifests and config are applied, and the pods keep the code of that image (a newer checkout names the same tag: v$(VERSION) from package.json, or the one the overlay's images: sets). To deploy new code, build and push it under a new tag and run make deploy IMG=<registry>/kagenti-webhook:<new tag> (or name it by digest, @sha256:...); see docs/install.md, Upgrade.

.PHONY: help build test start image certs manifests deploy deploy-install deploy-upgrade undeploy

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -e 's|$$(IMG)|$(IMG)|g' -e 's|$$(CERTS_DIR)|$(CERTS_DIR)|g' | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## Compile TypeScript to dist/
	npm run build

test: ## Build, typecheck and run every test
	npm test

start: ## Serve on https://localhost:9443 with dev certificates (certs/dev/), no cluster needed
	npm start

image: ## Build the container image $(IMG)
	$(CONTAINER_TOOL) build --build-arg REVISION=$(REVISION) -t $(IMG) .

certs: build ## Write a CA and serving certificate for the self-signed overlay ($(CERTS_DIR), git-ignored)
	$(CLI) certs --service $(SERVICE) --namespace $(NAMESPACE) --out $(CERTS_DIR)

manifests: ## Render manifests/$(OVERLAY) to stdout (OVERLAY=default|self-signed|with-network-policy)
	@if [ "$(OVERLAY)" = "self-signed" ] && [ ! -f $(CERTS_DIR)/tls.key ]; then \
	  echo "make: no certificates in $(CERTS_DIR): run 'make certs' first" >&2; exit 2; fi
	@$(CHECK_OVERLAY)
	@out="$$($(KUBECTL) kustomize manifests/$(OVERLAY))" || { echo "make: manifests/$(OVERLAY) does not render (kustomize's error above); nothing was printed" >&2; exit 2; }; \
	  printf '%s\n' "$$out" | $(SET_IMAGE)

deploy: ## Install or upgrade manifests/$(OVERLAY) (image $(IMG); an overlay's kustomize images: wins unless IMG= or VERSION= is given): preflight, then the webhook configurations last (install) or first (upgrade)
	@$(CHECK_OVERLAY)
	@manifests/set-image.sh --check '$(IMG)' $(if $(IMG_SETTING),'$(IMG_SETTING)')
	@KUBECTL="$(KUBECTL)" OVERLAY="$(OVERLAY)" manifests/preflight.sh
	@if [ "$(OVERLAY)" = "self-signed" ] && [ ! -f $(CERTS_DIR)/tls.key ]; then $(MAKE) certs; fi
	@mutating="$$($(KUBECTL) get mutatingwebhookconfiguration/$(SERVICE) --ignore-not-found -o name)" || exit 1; \
	  validating="$$($(KUBECTL) get validatingwebhookconfiguration/$(SERVICE) --ignore-not-found -o name)" || exit 1; \
	  running="$$($(KUBECTL) -n $(NAMESPACE) get deploy/$(SERVICE) --ignore-not-found -o 'jsonpath={.spec.template.spec.containers[?(@.name=="webhook")].image}')" || exit 1; \
	  if [ -n "$$running" ] && $(KUBECTL) kustomize manifests/$(OVERLAY) | $(SET_IMAGE) 2>/dev/null | sed -n 's/^[[:space:]]*\(- \)\{0,1\}image: //p' | grep -qxF -- "$$running"; then \
	    echo "$(SAME_IMAGE_WARNING)" >&2; fi; \
	  if [ -n "$$mutating" ] || [ -n "$$validating" ]; then \
	    echo "make: webhook configuration $(SERVICE) exists: upgrading, configurations first"; \
	    $(MAKE) --no-print-directory deploy-upgrade; \
	  else \
	    $(MAKE) --no-print-directory deploy-install; \
	  fi

# Run by deploy (after the preflight). A first install registers the webhooks only once the pods are ready, so a
# webhook that never became ready blocks nothing.
deploy-install:
	$(APPLY_ALL_BUT_WEBHOOKS)
	$(ROLLOUT)
	$(APPLY_WEBHOOKS)

# Run by deploy when a configuration exists (an upgrade, or one left half-installed). They go first: the old pods
# still answer them, and a new caBundle (self-signed: ca.crt holds the old CA and the new one after `make certs`
# rotated it) is in place before any new pod serves a certificate of the new CA. Should the rollout fail, the new
# configurations are answered by the old pods: say so, and how to go back.
deploy-upgrade:
	$(APPLY_WEBHOOKS)
	$(APPLY_ALL_BUT_WEBHOOKS)
	@$(ROLLOUT) || { echo "make: the rollout did not finish: the new webhook configurations are in place and the old pods answer them (a caBundle that no longer trusts their CA fails every admission). Fix the rollout and run make deploy again, or go back: kubectl -n $(NAMESPACE) rollout undo deploy/$(SERVICE), then apply the previous release's webhook configurations." >&2; exit 1; }

# undeploy: the webhook configurations, the generated ConfigMaps and Secrets (by label, whatever their hash), the
# rendered objects but the Namespace (cert-manager's Certificates and Issuers among them), and last, only when the
# render has cert-manager objects, the Secrets cert-manager made: it does not delete them with their Certificates,
# and would issue them again if they went first.
undeploy: ## Remove what manifests/$(OVERLAY) installed, webhook configurations first; never the namespace (Kagenti's too)
	@$(CHECK_OVERLAY)
	@set -e; if [ "$(OVERLAY)" = "self-signed" ] && [ ! -f $(CERTS_DIR)/tls.key ]; then dir=manifests/base; else dir=manifests/$(OVERLAY); fi; \
	  rendered="$$($(KUBECTL) kustomize $$dir)" || { echo "make: manifests/$(OVERLAY) does not render (above); nothing was deleted" >&2; exit 2; }; \
	  echo "$(KUBECTL) delete mutatingwebhookconfiguration/$(SERVICE) validatingwebhookconfiguration/$(SERVICE) --ignore-not-found"; \
	  $(KUBECTL) delete mutatingwebhookconfiguration/$(SERVICE) validatingwebhookconfiguration/$(SERVICE) --ignore-not-found; \
	  echo "$(KUBECTL) -n $(NAMESPACE) delete configmap,secret -l app.kubernetes.io/name=$(SERVICE) --ignore-not-found"; \
	  $(KUBECTL) -n $(NAMESPACE) delete configmap,secret -l app.kubernetes.io/name=$(SERVICE) --ignore-not-found; \
	  echo "$(KUBECTL) kustomize $$dir | $(FILTER_KINDS) drop Namespace | $(KUBECTL) delete --ignore-not-found -f -"; \
	  status=0; printf '%s\n' "$$rendered" | $(FILTER_KINDS) drop Namespace | $(KUBECTL) delete --ignore-not-found -f - || status=$$?; \
	  if printf '%s\n' "$$rendered" | grep -q '^apiVersion: cert-manager\.io/'; then \
	    echo "$(KUBECTL) -n $(NAMESPACE) delete secret $(SERVICE)-tls $(SERVICE)-ca --ignore-not-found"; \
	    $(KUBECTL) -n $(NAMESPACE) delete secret $(SERVICE)-tls $(SERVICE)-ca --ignore-not-found; \
	  fi; \
	  exit $$status
