# vigil build. `make run` and `make test` are the quick start; see README.md.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
BIN := bin/vigil
# staticcheck runs at a pinned version through the module proxy, so a fresh
# machine needs nothing installed.
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
# How long each fuzz target runs in `make test` (longer: make fuzz FUZZTIME=5m).
FUZZTIME ?= 10s

.PHONY: all build build-go ui ui-test run test test-reliability vet unit fuzz bench bench-peers clean

all: build

# The binary with the web UI embedded (internal/ui/dist, built by `make ui`).
build: ui
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/vigil

# The binary alone, with whatever UI build is there (none: a page saying how).
build-go:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/vigil

# The web UI (web/, React + Vite) into internal/ui/dist, which the binary embeds.
ui:
	cd web && npm ci --no-audit --no-fund && npm run build

# Browser tests: Playwright drives Debian's chromium against a real
# `vigil server` fed by `vigil demo` (web/e2e/global-setup.ts starts both).
ui-test: build
	cd web && npx playwright test

# The server and the demo shop together; Ctrl-C stops both.
run: build
	@trap 'kill 0' INT TERM EXIT; \
	./$(BIN) server --config examples/vigil.yaml --data-dir ./data & \
	for i in $$(seq 300); do curl -sf http://localhost:7070/-/ready >/dev/null 2>&1 && break; sleep 0.2; done; \
	./$(BIN) demo --otlp-endpoint localhost:4317 --port-base 8081 --rps 5 >/dev/null & \
	echo "vigil: http://localhost:7070 (demo shop gateway on http://localhost:8081)"; \
	wait

vet:
	@test -z "$$(gofmt -l cmd internal bench sdk examples)" || { echo "gofmt needed:"; gofmt -l cmd internal bench sdk examples; exit 1; }
	$(GO) vet ./...
	$(STATICCHECK) ./...
	cd bench && $(GO) vet ./...
	cd sdk && $(GO) vet ./... && $(STATICCHECK) ./...
	cd sdk/benchmarks && $(GO) vet ./...

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
RELIABILITY_TESTS := TestReliability|TestKill9|TestDiskFull|TestCorrupt|TestOverloadIsRetryable|TestBombAndPartialSuccess|TestSlowClients|TestAuthEveryRoute
test-reliability:
	VIGIL_RELIABILITY=full $(GO) test -count=1 -timeout 60m -v -run '$(RELIABILITY_TESTS)' ./cmd/vigil

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./internal/...

# Side-by-side benchmarks against Jaeger, Prometheus and VictoriaMetrics,
# written to docs/benchmarks.md (bench/cmd/vigil-peers). Peers are taken by
# path, never built: JAEGER_BIN (a Jaeger v2 all-in-one binary; without it
# the traces comparison is skipped), PROMETHEUS_BIN and VICTORIA_BIN
# (default: Debian's prometheus and victoria-metrics on PATH).
# BENCH_DURATION is the length of the metrics and logs phases, BENCH_STEP
# of each step of the traces ramp; the defaults take 12 to 15 minutes.
TELEMETRYGEN_VERSION ?= v0.161.0
BENCH_DURATION ?= 60s
BENCH_STEP ?= 20s
JAEGER_BIN ?=
PROMETHEUS_BIN ?= $(shell command -v prometheus)
VICTORIA_BIN ?= $(shell command -v victoria-metrics)

bench-peers: build-go
	cd bench && GOBIN=$(CURDIR)/bench/bin $(GO) install github.com/open-telemetry/opentelemetry-collector-contrib/cmd/telemetrygen@$(TELEMETRYGEN_VERSION)
	cd bench && $(GO) build -o bin/vigil-peers ./cmd/vigil-peers && $(GO) build -o bin/vigil-load ./cmd/vigil-load
	bench/bin/vigil-peers -vigil $(BIN) -telemetrygen bench/bin/telemetrygen -telemetrygen-version $(TELEMETRYGEN_VERSION) \
	  -vigil-load bench/bin/vigil-load -jaeger "$(JAEGER_BIN)" -prometheus "$(PROMETHEUS_BIN)" -victoria "$(VICTORIA_BIN)" \
	  -duration $(BENCH_DURATION) -step $(BENCH_STEP) -out docs/benchmarks.md

clean:
	rm -rf bin
