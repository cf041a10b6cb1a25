# vigil build. `make run` and `make test` are the quick start; see README.md.
SHELL := /bin/bash
GO ?= go
# vigil's version, in the form Prometheus and Alertmanager report theirs: a
# release tag's (v1.2.3 gives 1.2.3) on a tagged commit, otherwise a
# pseudo-version in Go's form, 0.0.0-<commit time UTC>-<commit>, with +dirty
# for local changes. Without git the binary falls back to 0.0.0-dev.
VERSION ?= $(shell { tag=$$(git describe --tags --exact-match --match 'v[0-9]*' 2>/dev/null) && echo "$${tag\#v}"; } || \
	TZ=UTC git log -1 --abbrev=12 --date=format-local:%Y%m%d%H%M%S --format='0.0.0-%cd-%h' 2>/dev/null | \
	sed "s/$$/$$(git diff --quiet HEAD 2>/dev/null || echo +dirty)/")
COMMIT ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)
BRANCH ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.branch=$(BRANCH)
BIN := bin/vigil
# staticcheck runs at a pinned version through the module proxy, so a fresh
# machine needs nothing installed.
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
# How long each fuzz target runs in `make test` (longer: make fuzz FUZZTIME=5m).
FUZZTIME ?= 10s

.PHONY: all build build-go ui ui-test run version test test-reliability vet tidy-check unit fuzz bench bench-peers bench-cluster clean

all: build

# Go's build cache makes a rebuild cheap; only the first one is slow.
define go-build
@test -e $(BIN) || echo "building $(BIN): the first build compiles DuckDB's C++ sources (cgo) and takes several minutes"
$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/vigil
endef

# The binary with the web UI embedded (internal/ui/dist, built by `make ui`).
build: ui
	$(go-build)

# The binary alone, with whatever UI build is there (none: a page saying how).
build-go:
	$(go-build)

version:
	@echo $(VERSION)

# The web UI (web/, React + Vite) into internal/ui/dist, which the binary
# embeds. Both steps run only when needed: npm ci when package-lock.json
# changed (a stamp in node_modules), the build when a web source changed.
UI_INDEX := internal/ui/dist/index.html
NPM_STAMP := web/node_modules/.vigil-npm-ci
# Directories too: a deleted file changes its directory's time.
WEB_SOURCES := $(shell find web/src web/public 2>/dev/null) \
	web/index.html web/package.json web/tsconfig.json web/vite.config.ts
ui: $(UI_INDEX)

$(UI_INDEX): $(NPM_STAMP) $(WEB_SOURCES)
	cd web && npm run build

$(NPM_STAMP): web/package-lock.json
	@command -v npm >/dev/null && node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' || \
	  { echo "building the web UI needs Node.js 20.19 or later with npm (node: $$(node --version 2>/dev/null || echo none)); 'make build-go' builds the binary without it" >&2; exit 1; }
	cd web && npm ci --no-audit --no-fund
	@touch $@

# Browser tests: Playwright drives Debian's chromium against a real
# `vigil server` fed by `vigil demo` (web/e2e/global-setup.ts starts both).
ui-test: build
	cd web && npx playwright test

# The server and the demo shop together. Ctrl-C stops the demo first (it
# flushes its telemetry to the server), then the server. `set -m` starts each
# in its own process group, so the terminal's SIGINT reaches only this shell
# (and make), which stops them in that order; the shell then exits 0 so make
# reports nothing. Job control is off again at once: with it on, bash would
# print a line for every job that ends. The RUN_* variables move it (the
# tests of cmd/vigil run it on free ports).
RUN_DATA_DIR ?= ./data
RUN_HTTP_ADDR ?= localhost:7070
RUN_OTLP_GRPC_ADDR ?= localhost:4317
RUN_OTLP_HTTP_ADDR ?= localhost:4318
RUN_DEMO_PORT ?= 8081
run: build
	@set -m; $(BIN) server --config examples/vigil.yaml --data-dir $(RUN_DATA_DIR) --http-addr $(RUN_HTTP_ADDR) \
	  --otlp-grpc-addr $(RUN_OTLP_GRPC_ADDR) --otlp-http-addr $(RUN_OTLP_HTTP_ADDR) & server=$$!; set +m; demo=; rc=0; \
	stop() { \
	  trap '' INT TERM HUP; trap - EXIT; \
	  if [ -n "$$demo" ]; then kill -TERM $$demo 2>/dev/null; wait $$demo; fi; \
	  if [ -n "$$server" ]; then kill -TERM $$server 2>/dev/null; wait $$server; rc=$$?; fi; \
	  exit $${1:-$$rc}; \
	}; \
	trap 'stop 0' INT TERM HUP; trap stop EXIT; \
	until curl -sf http://$(RUN_HTTP_ADDR)/-/ready >/dev/null 2>&1; do \
	  kill -0 $$server 2>/dev/null || exit 1; sleep 0.2; \
	done; \
	set -m; $(BIN) demo --otlp-endpoint $(RUN_OTLP_GRPC_ADDR) --vigil-url http://$(RUN_HTTP_ADDR) --port-base $(RUN_DEMO_PORT) --rps 5 >/dev/null & demo=$$!; set +m; \
	echo "vigil: http://$(RUN_HTTP_ADDR) (demo shop gateway on http://localhost:$(RUN_DEMO_PORT)); Ctrl-C stops both"; \
	wait $$server; rc=$$?; server=

vet:
	@test -z "$$(gofmt -l cmd internal bench sdk examples)" || { echo "gofmt needed:"; gofmt -l cmd internal bench sdk examples; exit 1; }
	$(GO) vet ./...
	$(STATICCHECK) ./...
	cd bench && $(GO) vet ./...
	cd sdk && $(GO) vet ./... && $(STATICCHECK) ./...
	cd sdk/benchmarks && $(GO) vet ./...

# Every module's go.mod and go.sum as go mod tidy leaves them. Not part of
# vet: tidy fetches the modules of the dependencies' own tests, which the
# build never needs.
tidy-check:
	$(GO) mod tidy -diff
	cd sdk && $(GO) mod tidy -diff
	cd sdk/benchmarks && $(GO) mod tidy -diff
	cd bench && $(GO) mod tidy -diff

unit:
	$(GO) test -count=1 -timeout 30m ./...
	cd sdk && $(GO) test -count=1 -timeout 10m ./...

# Every fuzz target in the tree, briefly (Go fuzzes one target per run).
fuzz:
	@set -e; grep -rl --include='*_test.go' '^func Fuzz' cmd internal | while read -r f; do \
	  for fn in $$(grep -o '^func Fuzz[A-Za-z0-9_]*' "$$f" | cut -d' ' -f2); do \
	    echo "fuzz ./$$(dirname $$f) $$fn"; \
	    $(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 1s ./$$(dirname $$f); \
	  done; \
	done

test: vet build unit fuzz ui-test

# The reliability suite at full size (docs/reliability.md): a minute at four
# times the sustainable rate under a memory cap, a million new series in a
# minute against the series limit, every route fuzzed 400 times, plus kill -9
# under load, disk full, damaged files, bombs and slow clients. `make test`
# runs the same tests at a smaller size.
RELIABILITY_TESTS := TestReliability|TestKill9|TestDiskFull|TestCorrupt|TestOverloadIsRetryable|TestBombAndPartialSuccess|TestSlowClients|TestAuthEveryRoute|TestRestartAfterCleanStop|TestClusterFaults|TestClusterLinearizableSilences
test-reliability:
	VIGIL_RELIABILITY=full $(GO) test -count=1 -timeout 60m -v -run '$(RELIABILITY_TESTS)' ./cmd/vigil

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./internal/...

# Side-by-side benchmarks against Jaeger, Prometheus, VictoriaMetrics and
# VictoriaLogs, written to docs/benchmarks.md (bench/cmd/vigil-peers). Peers
# are taken by path, never built: JAEGER_BIN (a Jaeger v2 all-in-one binary;
# without it the traces comparison is skipped), PROMETHEUS_BIN and
# VICTORIA_BIN (default: Debian's prometheus and victoria-metrics on PATH),
# VICTORIALOGS_BIN (a VictoriaLogs single-node binary; without it the logs
# section has no peer).
# BENCH_DURATION is the length of the metrics and logs phases, BENCH_STEP
# of each step of the traces ramp; the defaults take 12 to 15 minutes.
# BENCH_SECTIONS=logs (or traces, metrics, comma-separated) reruns those
# sections alone and keeps the others of docs/benchmarks.md.
# BENCH_VIGIL_LOKI_PUSH=false leaves out the run that sends vigil the logs
# load over Loki's push API, as VictoriaLogs is sent it (OTLP/HTTP always runs).
BENCH_DURATION ?= 60s
BENCH_STEP ?= 20s
JAEGER_BIN ?=
PROMETHEUS_BIN ?= $(shell command -v prometheus)
VICTORIA_BIN ?= $(shell command -v victoria-metrics)
VICTORIALOGS_BIN ?=
BENCH_SECTIONS ?=
BENCH_VIGIL_LOKI_PUSH ?= true

bench-peers: build-go
	cd bench && $(GO) build -o bin/vigil-peers ./cmd/vigil-peers && $(GO) build -o bin/vigil-load ./cmd/vigil-load
	bench/bin/vigil-peers -vigil $(BIN) -vigil-load bench/bin/vigil-load -jaeger "$(JAEGER_BIN)" -prometheus "$(PROMETHEUS_BIN)" -victoria "$(VICTORIA_BIN)" \
	  -victorialogs "$(VICTORIALOGS_BIN)" -vigil-loki-push=$(BENCH_VIGIL_LOKI_PUSH) -sections "$(BENCH_SECTIONS)" \
	  -duration $(BENCH_DURATION) -step $(BENCH_STEP) -out docs/benchmarks.md

# A three-node cluster on embedded Raft on loopback (bench/cmd/vigil-clusterbench):
# silence write latency through the leader and a follower, failover over
# CLUSTER_KILLS kill -9 of the leader, and an idle follower's CPU and memory
# next to a single node over CLUSTER_IDLE. About 6 minutes with the defaults.
CLUSTER_WRITES ?= 500
CLUSTER_KILLS ?= 20
CLUSTER_IDLE ?= 60s
bench-cluster: build-go
	cd bench && $(GO) build -o ../bin/vigil-clusterbench ./cmd/vigil-clusterbench
	bin/vigil-clusterbench -vigil $(BIN) -writes $(CLUSTER_WRITES) -kills $(CLUSTER_KILLS) -idle $(CLUSTER_IDLE)

clean:
	rm -rf bin
