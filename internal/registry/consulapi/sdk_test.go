package consulapi

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-observability/vigil/internal/registry"
	"github.com/vigil-observability/vigil/sdk/health"
	sdkreg "github.com/vigil-observability/vigil/sdk/registry"
)

// waitFor polls cond until it holds or 5 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func entry(reg *registry.Registry, id string) (registry.Entry, bool) {
	es, _ := reg.Entries("")
	for _, e := range es {
		if e.ID == id {
			return e, true
		}
	}
	return registry.Entry{}, false
}

// TestSDKRegistration runs the SDK's registration against this handler:
// the instance appears with its address, metadata and version; its health
// follows sdk/health's checks (a failing non-critical check is warning, a
// critical one critical); after vigil restarts with an empty registry it
// registers again; while vigil is down it keeps trying; Close deregisters.
func TestSDKRegistration(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	start := func(ln net.Listener) (*registry.Registry, func()) {
		reg := registry.New(registry.Options{})
		h := NewHandler(Options{Registry: reg, Registerer: prometheus.NewRegistry()})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { _ = h.Run(ctx); close(done) }()
		srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: h}}
		srv.Start()
		return reg, func() { cancel(); <-done; srv.Close() }
	}
	reg, stop := start(ln)

	checker := health.New(health.Options{})
	var optional, critical error
	checker.Register("cache", func(context.Context) error { return optional })
	checker.Register("db", func(context.Context) error { return critical }, health.Critical())
	c, err := sdkreg.New(sdkreg.Options{
		URL: "http://" + addr, Service: "shop", ID: "shop-1", Address: "10.0.0.7", Port: 8080,
		Version: "1.4.2", Meta: map[string]string{"zone": "eu-1"}, Tags: []string{"web"},
		Health: sdkreg.HealthOf(checker), TTL: 3 * time.Second, Interval: 50 * time.Millisecond,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	c.Start()
	t.Cleanup(func() { _ = c.Close(context.Background()) })

	waitFor(t, "the registration", func() bool { e, ok := entry(reg, "shop-1"); return ok && e.Health == registry.Passing })
	e, _ := entry(reg, "shop-1")
	if e.Service != "shop" || e.Address != "10.0.0.7" || e.Port != 8080 || e.Version() != "1.4.2" || e.Meta["zone"] != "eu-1" || len(e.Tags) != 1 {
		t.Fatalf("registered as %+v", e.Instance)
	}
	if len(e.Checks) != 1 || e.Checks[0].Type != registry.TTL || e.Checks[0].ID != "service:shop-1" {
		t.Fatalf("checks %+v", e.Checks)
	}

	optional = errors.New("cache cold")
	waitFor(t, "warning", func() bool { e, _ := entry(reg, "shop-1"); return e.Health == registry.Warning })
	critical = errors.New("db gone")
	waitFor(t, "critical", func() bool {
		e, _ := entry(reg, "shop-1")
		return e.Health == registry.Critical && e.Checks[0].Output == "cache: cache cold; db: db gone"
	})
	optional, critical = nil, nil
	waitFor(t, "passing again", func() bool { e, _ := entry(reg, "shop-1"); return e.Health == registry.Passing })

	// vigil goes away, then comes back empty on the same address.
	stop()
	time.Sleep(200 * time.Millisecond) // a few failed heartbeats
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	reg2, stop2 := start(ln2)
	defer stop2()
	waitFor(t, "the registration after a restart", func() bool { _, ok := entry(reg2, "shop-1"); return ok })

	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := entry(reg2, "shop-1"); ok {
		t.Fatal("still registered after Close")
	}
}

// TestSDKRegistrationVigilDown: with nothing listening, Start returns at
// once and Close does not wait for a deregistration that cannot happen.
func TestSDKRegistrationVigilDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	c, err := sdkreg.New(sdkreg.Options{URL: "http://" + addr, Service: "shop",
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	c.Start()
	time.Sleep(100 * time.Millisecond)
	if c.Registered() {
		t.Fatal("registered with nothing listening")
	}
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Fatalf("Start and Close took %s", d)
	}
}
