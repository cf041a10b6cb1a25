package selfobs

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRejectionSourcesBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	r := NewRejectionSources(func() time.Time { return now })
	for i := range MaxRejectionSources + 3 {
		now = now.Add(time.Second)
		r.Record("traces", "timestamp_too_old", strings.Repeat("x", i+1), 1)
	}
	now = now.Add(time.Second)
	r.Record("traces", "timestamp_too_old", "x", 4) // forgotten, so new again
	got := r.Recent("traces", "timestamp_too_old")
	if len(got) != MaxRejectionSources || got[0].Source != "x" || got[0].Items != 4 {
		t.Fatalf("recent = %+v, want %d sources, x first with 4 items", got, MaxRejectionSources)
	}
	if other := r.Recent("logs", "timestamp_too_old"); len(other) != 0 {
		t.Errorf("sources of another signal: %+v", other)
	}
}

func TestRejectFrom(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewIngestMetrics(reg)
	m.RejectFrom("logs", "value_truncated", "service.name=orders", 3)
	m.RejectFrom("logs", "value_truncated", "", 2)
	if got := testutil.ToFloat64(m.Rejected.WithLabelValues("logs", "value_truncated")); got != 5 {
		t.Errorf("vigil_rejected_total = %v, want 5", got)
	}
	if got := m.Sources.Recent("logs", "value_truncated"); len(got) != 1 || got[0].Items != 3 {
		t.Errorf("sources = %+v, want service.name=orders with 3 items", got)
	}
	var nilMetrics *IngestMetrics
	nilMetrics.RejectFrom("logs", "value_truncated", "x", 1) // must not panic
}
