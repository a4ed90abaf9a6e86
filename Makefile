# kagenti-webhook. `make help` lists the targets.
# npm scripts run on the pinned Node 24 from the `node` devDependency (npm puts node_modules/.bin first).

VERSION        ?= $(shell node -p "require('./package.json').version" 2>/dev/null || echo 0.1.0)
IMG            ?= ghcr.io/kagenti/kagenti-webhook:v$(VERSION)
CONTAINER_TOOL ?= docker
KUBECTL        ?= kubectl
# default (cert-manager), self-signed (certificates from `make certs`), with-network-policy
OVERLAY        ?= default
NAMESPACE      := kagenti-system
SERVICE        := kagenti-webhook
CERTS_DIR      := manifests/self-signed/certs
# The image the manifests name, whatever its tag: replaced by $(IMG) (VERSION=... and IMG=... both take effect).
MANIFEST_IMG   := ghcr.io/kagenti/kagenti-webhook:[^[:space:]]*
# The CLI runs on the pinned Node 24 (node_modules/.bin/node), not whatever `node` the shell has.
CLI            := PATH="$(CURDIR)/node_modules/.bin:$$PATH" node bin/kagenti-webhook.js
# Splits a rendered stream by kind (`make deploy` registers the webhooks last, `make undeploy` keeps the Namespace).
FILTER_KINDS   := manifests/filter-kinds.sh
WEBHOOK_KINDS  := MutatingWebhookConfiguration ValidatingWebhookConfiguration

.PHONY: help build test start image certs manifests deploy undeploy

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## Compile TypeScript to dist/
	npm run build

test: ## Build, typecheck and run every test
	npm test

start: ## Serve on https://localhost:9443 with dev certificates (certs/dev/), no cluster needed
	npm start

image: ## Build the container image $(IMG)
	$(CONTAINER_TOOL) build -t $(IMG) .

certs: build ## Write a CA and serving certificate for the self-signed overlay ($(CERTS_DIR), git-ignored)
	$(CLI) certs --service $(SERVICE) --namespace $(NAMESPACE) --out $(CERTS_DIR)

manifests: ## Render manifests/$(OVERLAY) to stdout (OVERLAY=default|self-signed|with-network-policy)
	@if [ "$(OVERLAY)" = "self-signed" ] && [ ! -f $(CERTS_DIR)/tls.key ]; then \
	  echo "make: no certificates in $(CERTS_DIR): run 'make certs' first" >&2; exit 2; fi
	@$(KUBECTL) kustomize manifests/$(OVERLAY) | sed 's|image: $(MANIFEST_IMG)$$|image: $(IMG)|'

deploy: ## Install manifests/$(OVERLAY) (image $(IMG)): preflight, all but the webhook configurations, rollout, then those
	@KUBECTL="$(KUBECTL)" OVERLAY="$(OVERLAY)" manifests/preflight.sh
	@if [ "$(OVERLAY)" = "self-signed" ] && [ ! -f $(CERTS_DIR)/tls.key ]; then $(MAKE) certs; fi
	$(KUBECTL) kustomize manifests/$(OVERLAY) | sed 's|image: $(MANIFEST_IMG)$$|image: $(IMG)|' | $(FILTER_KINDS) drop $(WEBHOOK_KINDS) | $(KUBECTL) apply -f -
	$(KUBECTL) -n $(NAMESPACE) rollout status deploy/$(SERVICE) --timeout=180s
	$(KUBECTL) kustomize manifests/$(OVERLAY) | $(FILTER_KINDS) keep $(WEBHOOK_KINDS) | $(KUBECTL) apply -f -

undeploy: ## Remove what manifests/$(OVERLAY) installed, webhook configurations first; never the namespace (Kagenti's too)
	$(KUBECTL) delete mutatingwebhookconfiguration/$(SERVICE) validatingwebhookconfiguration/$(SERVICE) --ignore-not-found
	$(KUBECTL) -n $(NAMESPACE) delete configmap,secret -l app.kubernetes.io/name=$(SERVICE) --ignore-not-found
	$(KUBECTL) -n $(NAMESPACE) delete secret $(SERVICE)-tls $(SERVICE)-ca --ignore-not-found
	@if [ "$(OVERLAY)" = "self-signed" ] && [ ! -f $(CERTS_DIR)/tls.key ]; then dir=manifests/base; else dir=manifests/$(OVERLAY); fi; \
	  echo "$(KUBECTL) kustomize $$dir | $(FILTER_KINDS) drop Namespace | $(KUBECTL) delete --ignore-not-found -f -"; \
	  $(KUBECTL) kustomize $$dir | $(FILTER_KINDS) drop Namespace | $(KUBECTL) delete --ignore-not-found -f -
