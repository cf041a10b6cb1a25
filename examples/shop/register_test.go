package shop

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/vigil-observability/vigil/internal/registry"
	"github.com/vigil-observability/vigil/internal/registry/consulapi"
)

// The registrar registers the shop's instances in vigil's registry,
// heartbeats their TTL checks, registers them again after vigil lost them
// (a restart), and deregisters them when it stops.
func TestRegistrar(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	reg := registry.New(registry.Options{Now: func() time.Time { return now }})
	srv := httptest.NewServer(consulapi.NewHandler(consulapi.Options{Registry: reg}))
	defer srv.Close()
	r := newRegistrar(srv.URL, slog.New(slog.DiscardHandler))
	r.add(nameGateway, "127.0.0.1:8081")
	r.add(namePayments, "127.0.0.1:8084")

	health := func(service string) []string {
		entries, _ := reg.Entries(service)
		var out []string
		for _, e := range entries {
			out = append(out, e.ID+" "+string(e.Health))
		}
		return out
	}
	if err := r.sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := health(nameGateway); len(got) != 1 || got[0] != "gateway@127.0.0.1:8081 passing" {
		t.Fatalf("after the first sync: %v", got)
	}
	// The TTL runs out without a heartbeat; a heartbeat brings it back.
	now = now.Add(31 * time.Second)
	reg.Expire(now)
	if got := health(namePayments); len(got) != 1 || got[0] != "payments@127.0.0.1:8084 critical" {
		t.Fatalf("past the TTL: %v", got)
	}
	if err := r.sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := health(namePayments); len(got) != 1 || got[0] != "payments@127.0.0.1:8084 passing" {
		t.Fatalf("after a heartbeat: %v", got)
	}
	// vigil lost it: registered again.
	if err := reg.Deregister("gateway@127.0.0.1:8081"); err != nil {
		t.Fatal(err)
	}
	if err := r.sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := health(nameGateway); len(got) != 1 {
		t.Fatalf("not registered again: %v", got)
	}
	// Stopping deregisters.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	r.run(ctx)
	if got := append(health(nameGateway), health(namePayments)...); len(got) != 0 {
		t.Errorf("after the stop: %v", got)
	}
}
