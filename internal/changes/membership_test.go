package changes

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigil-observability/vigil/internal/configcentre"
	"github.com/vigil-observability/vigil/internal/registry"
)

// TestMembership: a registration of a new id is a join, a registration
// again is not; a deregistration and a removal after a critical TTL are
// leaves, with the version the instance ran and why it left.
func TestMembership(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	now := t0
	m := NewMembership(0, nil)
	reg := registry.New(registry.Options{Now: func() time.Time { return now }, OnMembership: m.Record})
	ttl := []registry.CheckSpec{{Type: registry.TTL, TTL: 10 * time.Second, Status: registry.Passing}}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(reg.Register(registry.Instance{ID: "shop-1", Service: "shop", Address: "10.0.0.7", Port: 8080, Meta: map[string]string{"version": "1.4.2"}, Checks: ttl}))
	now = t0.Add(time.Second)
	must(reg.Register(registry.Instance{ID: "shop-1", Service: "shop", Address: "10.0.0.7", Port: 8080, Meta: map[string]string{"version": "1.4.2"}, Checks: ttl}))
	must(reg.Register(registry.Instance{ID: "cart-1", Service: "cart", Address: "10.0.0.8", Checks: ttl}))
	now = t0.Add(2 * time.Second)
	must(reg.Deregister("cart-1"))
	// shop-1 stops heartbeating: critical at 11s, removed a minute later.
	now = t0.Add(2 * time.Minute)
	reg.Expire(t0.Add(12 * time.Second))
	reg.Expire(now)

	got := m.Changes(t0, t0.Add(time.Hour))
	want := []configcentre.Change{
		{Time: t0, Kind: "registry", Action: "join", Service: "shop", Instance: "shop-1", To: "1.4.2", Author: "vigil-registry", Message: "10.0.0.7:8080"},
		{Time: t0.Add(time.Second), Kind: "registry", Action: "join", Service: "cart", Instance: "cart-1", Author: "vigil-registry", Message: "10.0.0.8"},
		{Time: t0.Add(2 * time.Second), Kind: "registry", Action: "leave", Service: "cart", Instance: "cart-1", Author: "vigil-registry", Message: "deregistered"},
		{Time: t0.Add(2 * time.Minute), Kind: "registry", Action: "leave", Service: "shop", Instance: "shop-1", From: "1.4.2", Author: "vigil-registry",
			Message: "removed: check service:shop-1 critical for 1m0s (TTL expired)"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d events: %+v", len(got), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	if got := m.Changes(t0.Add(time.Second), t0.Add(2*time.Second)); len(got) != 2 {
		t.Errorf("a range: %+v", got)
	}
}

// TestMembershipBounded: past its bound the oldest event is dropped and
// counted.
func TestMembershipBounded(t *testing.T) {
	pr := prometheus.NewRegistry()
	m := NewMembership(3, pr)
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for i := range 5 {
		m.Record(registry.Membership{Time: t0.Add(time.Duration(i) * time.Second), Join: true,
			Instance: registry.Instance{ID: string(rune('a' + i)), Service: "s"}})
	}
	got := m.Changes(t0, t0.Add(time.Hour))
	if len(got) != 3 || got[0].Instance != "c" || got[2].Instance != "e" {
		t.Fatalf("kept %+v", got)
	}
	if n := testutil.ToFloat64(m.dropped); n != 2 {
		t.Fatalf("dropped %v", n)
	}
}
