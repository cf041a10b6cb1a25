package doctor

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vigil-observability/vigil/internal/ingest/limits"
)

// shipStreams admits n streams of a service into tr, as the Loki push
// handler does, with labels made by labels(i).
func shipStreams(tr *limits.StreamTracker, tenant, service string, n int, labels func(i int) []string) {
	for i := range n {
		kv := append([]string{"service_name", service}, labels(i)...)
		tr.Admit(tenant, service, func(yield func(string, string) bool) {
			for j := 0; j+1 < len(kv); j += 2 {
				if !yield(kv[j], kv[j+1]) {
					return
				}
			}
		}, testNow)
	}
}

func TestLogStreamsCheck(t *testing.T) {
	env := func(i int) []string { return []string{"env", []string{"prod", "staging"}[i%2]} }
	tests := []struct {
		name     string
		limits   limits.StreamLimits
		ship     func(tr *limits.StreamTracker)
		want     []string
		severity Severity
		seen     string
		fix      string
		sample   string
	}{
		{
			name: "healthy: streams labelled by source",
			ship: func(tr *limits.StreamTracker) {
				shipStreams(tr, "fake", "checkout", 60, func(i int) []string {
					return []string{"pod", fmt.Sprint("checkout-", i), "level", []string{"info", "error"}[i%2]}
				})
				shipStreams(tr, "fake", "cart", 4, env)
			},
		},
		{
			name: "healthy: a few request ids are not yet a trend",
			ship: func(tr *limits.StreamTracker) {
				shipStreams(tr, "fake", "cart", 3, func(i int) []string { return []string{"request_id", fmt.Sprint("r", i)} })
			},
		},
		{
			name: "a request id in the stream labels",
			ship: func(tr *limits.StreamTracker) {
				shipStreams(tr, "fake", "checkout", 40, func(i int) []string {
					return []string{"env", "prod", "request_id", fmt.Sprintf("6f1c%04d-1c2d-4e5f-8a9b-0c1d2e3f4a5b", i)}
				})
				shipStreams(tr, "fake", "cart", 4, env)
			},
			want: []string{"log_stream_cardinality checkout"}, severity: Warning,
			seen: "the stream label request_id takes 40 distinct values among the 40 active streams of checkout",
			fix:  "stop sending request_id as a stream label: send it as structured metadata", sample: "request_id=6f1c0039-",
		},
		{
			name: "ids under a neutral name, in another tenant",
			ship: func(tr *limits.StreamTracker) {
				shipStreams(tr, "team-a", "billing", 30, func(i int) []string { return []string{"ref", fmt.Sprint(1_000_000 + i)} })
			},
			want: []string{"log_stream_cardinality billing (tenant team-a)"}, severity: Warning,
			seen: "the stream label ref takes 30 distinct values", fix: "stage.structured_metadata",
		},
		{
			name:   "a service at its stream limit",
			limits: limits.StreamLimits{MaxPerService: 50},
			ship: func(tr *limits.StreamTracker) {
				shipStreams(tr, "fake", "api", 80, func(i int) []string { return []string{"trace_id", fmt.Sprintf("%032x", i+1)} })
			},
			want: []string{"log_stream_cardinality api"}, severity: Critical,
			seen: "the stream label trace_id takes 50 distinct values among the 50 active streams of api, of its limit of 50 (limits.max_streams_per_service): lines of new streams are refused",
			fix:  "vigil reads trace and span ids from structured metadata",
		},
		{
			name:   "many pods near the limit",
			limits: limits.StreamLimits{MaxPerService: 100},
			ship: func(tr *limits.StreamTracker) {
				shipStreams(tr, "fake", "web", 85, func(i int) []string { return []string{"pod", fmt.Sprint("web-", i)} })
			},
			want: []string{"log_stream_cardinality web"}, severity: Warning,
			seen: "of its limit of 100", fix: "raise limits.max_streams_per_service",
		},
		{
			name:   "a tenant near its limit through many services",
			limits: limits.StreamLimits{MaxPerTenant: 100},
			ship: func(tr *limits.StreamTracker) {
				for s := range 9 {
					shipStreams(tr, "fake", fmt.Sprint("svc", s), 10, func(i int) []string { return []string{"pod", fmt.Sprint("p", i)} })
				}
			},
			want: []string{"log_stream_cardinality tenant fake"}, severity: Warning,
			seen: "the tenant has 90 active streams of its limit of 100 (limits.max_streams_per_tenant)", fix: "raise limits.max_streams_per_tenant",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := limits.NewStreamTracker(cmpLimits(tt.limits))
			tt.ship(tr)
			got, err := LogStreamsCheck{Streams: tr, Now: func() time.Time { return testNow }}.Run(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			expectFindings(t, got, tt.want...)
			for _, f := range got {
				t.Logf("%s %s: %s\n  samples %v\n  cause %s\n  fix %s", f.Severity, f.Subject, f.Evidence.Summary, f.Evidence.Samples, f.Cause, f.Fix)
				if f.Severity != tt.severity {
					t.Errorf("severity %s, want %s", f.Severity, tt.severity)
				}
				if !strings.Contains(f.Evidence.Summary, tt.seen) {
					t.Errorf("summary %q lacks %q", f.Evidence.Summary, tt.seen)
				}
				if !strings.Contains(f.Fix, tt.fix) {
					t.Errorf("fix %q lacks %q", f.Fix, tt.fix)
				}
				if tt.sample != "" && !strings.Contains(strings.Join(f.Evidence.Samples, " "), tt.sample) {
					t.Errorf("samples %q lack %q", f.Evidence.Samples, tt.sample)
				}
			}
		})
	}
}

// cmpLimits turns the limits a scenario leaves at zero off, so that only
// the limit it sets applies.
func cmpLimits(l limits.StreamLimits) limits.StreamLimits {
	if l.MaxPerTenant == 0 {
		l.MaxPerTenant = -1
	}
	if l.MaxPerService == 0 {
		l.MaxPerService = -1
	}
	return l
}
