# backinstock: every target here is what CI runs too. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO          ?= go
BIN         := $(CURDIR)/bin
DATA_DIR    ?= .data
# Every module of the workspace, as package patterns.
PKGS        := $(shell $(GO) list -m -f '{{.Path}}/...' 2>/dev/null)
# Binaries the project ships.
CMDS        := backinstock/services/inventory/cmd/... backinstock/services/wishlist/cmd/... \
               backinstock/services/notifier/cmd/... backinstock/services/gateway/cmd/... \
               backinstock/services/engagement/cmd/... \
               backinstock/topics/cmd/... backinstock/deploy/devstack/cmd/...
# A package's module and version, for lint's comparison of the modules alone
# with the workspace (the project's own modules, replaced by paths in the
# modules' go.mod, are the same source either way).
MODVER      := {{with .Module}}{{if and .Version (not .Replace)}}{{.Path}} {{.Version}}{{end}}{{end}}
# Tool versions are pinned here and installed into bin/tools on first use.
STATICCHECK := $(BIN)/tools/staticcheck
STATICCHECK_VERSION := v0.8.2
# promtool from the Prometheus version deploy/check parses rules with.
PROMTOOL := $(BIN)/tools/promtool
PROMTOOL_VERSION := v0.316.0
# Mailpit, the SMTP server the gateway's tests send to (shared/testenv runs
# it; its MailpitVersion must equal this, a test checks).
MAILPIT     := $(BIN)/tools/mailpit
MAILPIT_VERSION := v1.33.1

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

.PHONY: build
build: ## build every binary into bin/
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ $(CMDS)

.PHONY: test
# deploy/check's tests run without -race, beside the others: the checker is
# one goroutine, and its fifty broken-file cases took 177 s under the race
# detector against 38 s without (the services its dashboard test starts are
# raced in their own packages).
NORACE_PKGS := backinstock/deploy/check/...

test: $(MAILPIT) ## run every module's tests, with the race detector but for deploy/check's (starts its own Kafka, NATS, Redis and Mailpit)
	$(GO) test -count=1 -timeout 20m $(NORACE_PKGS) & norace=$$!; \
	$(GO) test -race -count=1 -timeout 20m $(filter-out $(NORACE_PKGS),$(PKGS)); race=$$?; \
	wait $$norace && exit $$race

.PHONY: demo
demo: build $(MAILPIT) ## run the whole pipeline locally on the embedded stack (Ctrl-C stops it)
	$(BIN)/devstack --data-dir $(DATA_DIR)

.PHONY: infra
infra: build $(MAILPIT) ## run only Kafka, NATS, Redis and Mailpit (for running services by hand)
	$(BIN)/devstack --data-dir $(DATA_DIR) --infra-only

.PHONY: topics
topics: build ## validate the topic catalogue and plan it against KAFKA_BROKERS (default: the local stack)
	$(BIN)/topics validate
	set -a; [ -f $(DATA_DIR)/devstack.env ] && . $(DATA_DIR)/devstack.env; set +a; $(BIN)/topics plan

.PHONY: e2e
e2e: ## end-to-end: real binaries as processes against Kafka, NATS and Redis, with faults
	$(GO) test -tags e2e -count=1 -v -timeout 30m backinstock/scripts/e2e/...

.PHONY: browser-test
browser-test: build $(MAILPIT) ## drive the demo page in headless Chromium on ports of its own (needs chromium and node; .ci/run installs them)
	scripts/browser/run.sh

.PHONY: interop-test
interop-test: build $(MAILPIT) ## docs/interop.md's kafkajs and NATS examples (and kcat) against the local stack on ports of its own (needs node and kcat; .ci/run installs them)
	scripts/interop/run.sh

.PHONY: screenshot
screenshot: build $(MAILPIT) ## browser-test, and save the pages as docs/demo.png and docs/demo-reports.png
	SCREENSHOT=$(CURDIR)/docs/demo.png scripts/browser/run.sh

.PHONY: bench
bench: bench-inventory bench-wishlist bench-notifier bench-gateway bench-e2e ## every benchmark below; figures in docs/benchmarks.md

.PHONY: bench-inventory
bench-inventory: ## inventory: single PUT and bulk updates/s against real Redis, restock → Kafka latency
	cd services/inventory && $(GO) test -run '^$$' -bench . -benchtime 1x -count=1 ./app/

.PHONY: bench-wishlist
bench-wishlist: ## wishlist: one restock fanned out to 1,000,000 wishlisters (records/s, wall time, peak RSS)
	$(MAKE) -C services/wishlist bench

.PHONY: bench-notifier
bench-notifier: ## notifier: 1,000,000 notifications Kafka → Redis → JetStream, latency at 20,000/s, the bare loop
	$(MAKE) -C services/notifier bench

.PHONY: bench-gateway
bench-gateway: $(MAILPIT) ## gateway: emails/s to Mailpit and webhooks/s to a verifying receiver from one gateway process, exactly once checked
	$(MAKE) -C services/gateway bench

.PHONY: bench-e2e
bench-e2e: ## end to end: 1,000,000-wishlister restock API → edge, and first-delivery latency p50/p99
	$(GO) run backinstock/scripts/cmd/e2ebench

.PHONY: bench-edge-streams
bench-edge-streams: ## edge: JetStream ingest with one stream per channel against one stream per region, exactly once checked (about 1 min)
	$(MAKE) -C services/notifier streams

.PHONY: bench-kafka-records
bench-kafka-records: ## kafka: producer and read-back CPU per notification at 1, 10, 50 and 200 notifications per record, every record checked once (about 1 min)
	cd shared && $(GO) test -run '^$$' -bench NotificationsPerRecord -benchtime 500000x -count 2 ./kafka

.PHONY: bench-scale
bench-scale: ## scale: the 1M restock at fan-out parallelism 1, 2, 4 with 1, 2, 4 replicas of the region's fan-out worker and notifier, then 3M (about 16 min on 2 cores)
	$(GO) run backinstock/scripts/cmd/scalebench

.PHONY: lint
lint: $(STATICCHECK) $(PROMTOOL) ## gofmt check, each module built and vetted alone, go vet, staticcheck over every module; deploy manifests checked strictly; OpenAPI and AsyncAPI documents validated; promtool's alert rule tests
	@out=$$(gofmt -l $$($(GO) list -m -f '{{.Dir}}')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
# Each module must also build without go.work (GOWORK=off), as a consumer of
# it or a Docker build sees it: its go.mod and go.sum complete on their own,
# and naming the versions the workspace tests (go work sync keeps them so).
# Same versions also let these builds and the workspace's share the build
# cache: with older ones in the modules' go.mod, lint compiled everything
# twice (82 s more of a cold CI run).
	@ws=$$($(GO) list -deps -test -tags e2e -f '$(MODVER)' $(PKGS) | sort -u); \
	$(GO) list -m -f '{{.Path}} {{.Dir}}' | while read -r mod dir; do \
		(cd "$$dir" && GOWORK=off $(GO) build ./... && GOWORK=off $(GO) vet -tags e2e ./...) || \
		{ echo "module $$mod does not build alone (GOWORK=off): run GOWORK=off go mod tidy in $$dir"; exit 1; }; \
		other=$$(cd "$$dir" && GOWORK=off $(GO) list -deps -test -tags e2e -f '$(MODVER)' ./... | sort -u | comm -23 - <(echo "$$ws")); \
		[ -z "$$other" ] || { echo "module $$mod alone (GOWORK=off) builds with other versions than the workspace:"; echo "$$other"; \
			echo "run go work sync, then GOWORK=off go mod tidy in each module"; exit 1; }; \
	done
	$(GO) vet -tags e2e $(PKGS)
	$(STATICCHECK) -tags e2e $(PKGS)
	$(GO) run backinstock/deploy/check/cmd/deploycheck
	$(PROMTOOL) test rules deploy/grafana/alerts_test.yaml
# The AsyncAPI document is checked by the official parser, which is Node's.
	@if command -v node >/dev/null; then \
		[ -d scripts/asyncapi/node_modules ] || (cd scripts/asyncapi && npm ci --no-audit --no-fund --loglevel=error); \
		node scripts/asyncapi/validate.mjs topics/asyncapi.yaml; \
	else echo "lint: node not found, topics/asyncapi.yaml not validated (.ci/run installs Node.js)"; fi

.PHONY: tools
tools: $(STATICCHECK) $(PROMTOOL) $(MAILPIT) ## install the pinned tools (staticcheck, promtool, mailpit) into bin/tools

$(STATICCHECK):
	GOBIN=$(BIN)/tools $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

$(PROMTOOL):
	GOBIN=$(BIN)/tools $(GO) install github.com/prometheus/prometheus/cmd/promtool@$(PROMTOOL_VERSION)

.PHONY: fuzz
fuzz: ## every fuzz target of the record decoders and HTTP handlers for FUZZTIME each (default 60s; make test runs their seeds)
	scripts/fuzz.sh

.PHONY: rules
rules: ## regenerate the Prometheus Operator's PrometheusRule from deploy/grafana/alerts.yaml
	$(GO) run backinstock/deploy/check/cmd/deploycheck --write-rules
$(MAILPIT):
	GOBIN=$(BIN)/tools $(GO) install github.com/axllent/mailpit@$(MAILPIT_VERSION)

.PHONY: clean
clean: ## remove built binaries and the local stack's state
	rm -rf $(BIN) $(DATA_DIR)
