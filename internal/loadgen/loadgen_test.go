package loadgen

import (
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
)

func TestOptions(t *testing.T) {
	svcs := []string{"a", "b", "c"}
	g := NewWithOptions(1, Options{Services: svcs, Operations: 4, Spread: time.Minute, RareEvery: 50})
	now := time.Unix(1_700_000_000, 0)
	names := map[string]map[string]bool{} // service -> server span names
	rareSpans := 0
	for range 100 {
		td, _ := g.Traces(20, 5, now)
		rs := td.ResourceSpans().At(0)
		svc, _ := rs.Resource().Attributes().Get("service.name")
		if names[svc.Str()] == nil {
			names[svc.Str()] = map[string]bool{}
		}
		spans := rs.ScopeSpans().At(0).Spans()
		for i := range spans.Len() {
			sp := spans.At(i)
			if sp.Kind() == ptrace.SpanKindServer {
				names[svc.Str()][sp.Name()] = true
			}
			if age := now.Sub(sp.StartTimestamp().AsTime()); age > time.Minute || age < -time.Second {
				t.Fatalf("span starts %v before now, want within the one-minute spread", age)
			}
			if v, ok := sp.Attributes().Get(RareTagKey); ok && v.Str() == RareTagValue {
				rareSpans++
			}
		}
	}
	if len(names) != len(svcs) {
		t.Errorf("services seen: %v, want %v", names, svcs)
	}
	for svc, ops := range names {
		if len(ops) != 4 {
			t.Errorf("%s has %d server operations, want 4: %v", svc, len(ops), ops)
		}
	}
	if rareSpans < 100 || rareSpans > 400 {
		t.Errorf("%d of 10000 spans carry the rare tag, want about 200", rareSpans)
	}
	rareLogs := 0
	for range 10 {
		recs := g.Logs(1000, now, nil).ResourceLogs().At(0).ScopeLogs().At(0).LogRecords()
		for i := range recs.Len() {
			if strings.Contains(recs.At(i).Body().Str(), RareLogToken) {
				rareLogs++
			}
		}
	}
	if rareLogs < 100 || rareLogs > 400 {
		t.Errorf("%d of 10000 log bodies contain %q, want about 200", rareLogs, RareLogToken)
	}
}

func TestDefaultsUnchanged(t *testing.T) {
	// New keeps its five shop services and shared routes.
	g := New(1)
	td, _ := g.Traces(50, 5, time.Now())
	svc, _ := td.ResourceSpans().At(0).Resource().Attributes().Get("service.name")
	if !strings.Contains(strings.Join(services, ","), svc.Str()) {
		t.Errorf("service %q is not a shop service", svc.Str())
	}
	spans := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans()
	for i := range spans.Len() {
		if _, ok := spans.At(i).Attributes().Get(RareTagKey); ok {
			t.Fatal("New's spans carry the rare tag")
		}
	}
}
