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

.PHONY: all build build-go ui ui-test run test vet unit fuzz bench clean

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

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./internal/...

clean:
	rm -rf bin
