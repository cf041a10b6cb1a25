package limits

import (
	"fmt"
	"maps"
	"testing"
	"time"
)

func pairs(kv ...string) func(func(string, string) bool) {
	return func(yield func(string, string) bool) {
		for i := 0; i+1 < len(kv); i += 2 {
			if !yield(kv[i], kv[i+1]) {
				return
			}
		}
	}
}

func TestStreamTrackerLimitsAndWindow(t *testing.T) {
	tr := NewStreamTracker(StreamLimits{MaxPerTenant: 3, MaxPerService: 2, Window: time.Hour})
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	admit := func(tenant, svc, id string, at time.Time) string {
		r, _ := tr.Admit(tenant, svc, pairs("service_name", svc, "request_id", id), at)
		return r
	}
	for _, tc := range []struct {
		tenant, svc, id string
		at              time.Duration
		want            string
	}{
		{"t", "api", "1", 0, ""},
		{"t", "api", "2", 0, ""},
		{"t", "api", "3", 0, ReasonStreamLimit}, // the service's share
		{"t", "api", "1", time.Minute, ""},      // an existing stream is always admitted
		{"t", "web", "1", 0, ""},
		{"t", "web", "2", 0, ReasonStreamLimit}, // the tenant's
		{"u", "api", "3", 0, ""},                // another tenant
		// api 2 and web 1 were last seen at t0; past the window they are
		// forgotten, and api 1, seen a minute later, still counts.
		{"t", "api", "3", time.Hour + 30*time.Second, ""},
		{"t", "api", "4", time.Hour + 30*time.Second, ReasonStreamLimit},
		{"t", "web", "9", time.Hour + 30*time.Second, ""},
	} {
		if got := admit(tc.tenant, tc.svc, tc.id, t0.Add(tc.at)); got != tc.want {
			t.Errorf("%s/%s/%s at %s: %q, want %q", tc.tenant, tc.svc, tc.id, tc.at, got, tc.want)
		}
	}
	got := map[string]int{}
	for _, u := range tr.Usage(t0.Add(time.Hour + time.Minute)) {
		got[u.Tenant+"/"+u.Service] = u.Streams
	}
	// u/api 3, seen only at t0, is gone too.
	if want := map[string]int{"t/api": 2, "t/web": 1}; !maps.Equal(got, want) {
		t.Errorf("usage %v, want %v", got, want)
	}
	if u := tr.Usage(t0.Add(5 * time.Hour)); len(u) != 0 {
		t.Errorf("usage long after the last line: %+v, want none", u)
	}
}

func TestStreamTrackerUsageLabels(t *testing.T) {
	tr := NewStreamTracker(StreamLimits{MaxPerTenant: -1, MaxPerService: -1})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 50 {
		if r, _ := tr.Admit("fake", "api", pairs("env", "prod", "pod", fmt.Sprint("api-", i%3), "request_id", fmt.Sprintf("req-%04d", i)), now); r != "" {
			t.Fatalf("refused with limits off: %s", r)
		}
	}
	u := tr.Usage(now)
	if len(u) != 1 || u[0].Streams != 50 || u[0].ServiceLimit != 0 || u[0].TenantLimit != 0 {
		t.Fatalf("usage %+v", u)
	}
	labels := u[0].Labels
	if len(labels) != 3 || labels[0].Name != "request_id" || labels[0].Values != 50 || labels[1].Name != "pod" || labels[1].Values != 3 {
		t.Fatalf("labels %+v, want request_id (50 values) first, then pod (3)", labels)
	}
	if ex := labels[0].Examples; len(ex) != maxExamplesPerLabel || ex[len(ex)-1] != "req-0049" {
		t.Errorf("examples %q, want the %d latest", ex, maxExamplesPerLabel)
	}
}

// Tenants are whatever X-Scope-OrgID a client sends: all of them together
// hold at most ten tenants' limit, so inventing tenants cannot grow the
// tracker without bound.
func TestStreamTrackerBoundsTenants(t *testing.T) {
	tr := NewStreamTracker(StreamLimits{MaxPerTenant: 2, MaxPerService: -1})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	refused := 0
	for i := range 30 {
		r, detail := tr.Admit(fmt.Sprint("tenant-", i), "api", pairs("service_name", "api", "n", "1"), now)
		if r != "" {
			refused++
			if r != ReasonStreamLimit || detail == "" {
				t.Fatalf("refused as %q (%s)", r, detail)
			}
		}
	}
	if refused != 10 {
		t.Errorf("%d of 30 tenants' first streams refused, want 10 past the 20 streams held", refused)
	}
	if u := tr.Usage(now); len(u) != 20 {
		t.Errorf("%d tenants tracked, want 20 (none kept for a refused stream)", len(u))
	}
}

// BenchmarkStreamTrackerAdmit measures a push's per-stream cost: mostly
// streams already active, as a steady agent sends them.
func BenchmarkStreamTrackerAdmit(b *testing.B) {
	tr := NewStreamTracker(StreamLimits{})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	labels := make([][]string, 1000)
	for i := range labels {
		labels[i] = []string{"env", "prod", "host", fmt.Sprint("host-", i%50), "job", "varlogs", "filename", fmt.Sprint("/var/log/app", i, ".log"), "service_name", fmt.Sprint("svc", i%20)}
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		kv := labels[i%len(labels)]
		if r, _ := tr.Admit("fake", kv[9], pairs(kv...), now); r != "" {
			b.Fatal(r)
		}
	}
}
