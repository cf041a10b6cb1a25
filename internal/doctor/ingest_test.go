package doctor

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-observability/vigil/internal/selfobs"
)

func TestIngestCheck(t *testing.T) {
	steady := func(m *selfobs.IngestMetrics) {
		m.Receive("traces", 1000)
		m.Receive("logs", 500)
		m.Receive("metrics", 20000)
	}
	tests := []struct {
		name string
		// before happens before the first run, between before the second,
		// a minute later.
		before, between func(*selfobs.IngestMetrics)
		want            []string
		severity        Severity
		seen, fix       string
		sample          string
	}{
		{name: "healthy: everything received is kept", before: steady, between: steady},
		{
			name: "old timestamps from one service", before: steady,
			between: func(m *selfobs.IngestMetrics) {
				steady(m)
				m.RejectFrom("traces", "timestamp_too_old", "service.name=orders", 50)
			},
			want: []string{"ingest_rejections traces timestamp_too_old"}, severity: Warning,
			seen: "50 of 1000 spans received (5.0%) were rejected (timestamp_too_old) in the last 1m0s, latest from service.name=orders",
			fix:  "NTP", sample: "service.name=orders (50 spans since ",
		},
		{
			name: "a large share lost is critical", before: steady,
			between: func(m *selfobs.IngestMetrics) {
				steady(m)
				m.RejectFrom("metrics", "out_of_order", "remote_write client 10.0.0.7", 4000)
			},
			want: []string{"ingest_rejections metrics out_of_order"}, severity: Critical,
			seen: "(20.0%)", fix: "external_labels",
		},
		{
			name: "altered items are told, not warned", before: steady,
			between: func(m *selfobs.IngestMetrics) {
				steady(m)
				m.Reject("logs", "value_truncated", 20)
			},
			want: []string{"ingest_rejections logs value_truncated"}, severity: Info,
			seen: "20 log records were altered (value_truncated)", fix: "limits.max_attribute_value_length",
		},
		{
			name: "whole requests refused", before: steady,
			between: func(m *selfobs.IngestMetrics) {
				steady(m)
				m.RejectFrom("traces", "request_too_large", "client 10.0.0.9", 3)
				m.Reject("logs", "undecodable", 1)
			},
			want:     []string{"ingest_rejections logs undecodable", "ingest_rejections traces request_too_large"},
			severity: Warning, seen: "1 request was refused (undecodable)", fix: "otlp_grpc_addr",
		},
		{
			name: "Loki lines of new streams refused", before: steady,
			between: func(m *selfobs.IngestMetrics) {
				steady(m)
				m.RejectFrom("logs", "stream_limit", "client 10.0.0.4", 25)
			},
			want: []string{"ingest_rejections logs stream_limit"}, severity: Warning,
			seen: "25 of 500 log records received (5.0%) were rejected (stream_limit)", fix: "log_stream_cardinality",
			sample: "client 10.0.0.4 (25 log records since ",
		},
		{
			name: "rejections before the window are old news",
			before: func(m *selfobs.IngestMetrics) {
				steady(m)
				m.Reject("traces", "invalid_trace_id", 10)
			},
			between: steady,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m := selfobs.NewIngestMetrics(reg)
			now := time.Now()
			m.Sources = selfobs.NewRejectionSources(func() time.Time { return now })
			c := &IngestCheck{Gatherer: reg, Sources: m.Sources, Now: func() time.Time { return now }}
			tt.before(m)
			if got, err := c.Run(t.Context()); err != nil || len(got) != 0 {
				t.Fatalf("first run: %v, %+v; want nothing to compare with yet", err, got)
			}
			now = now.Add(time.Minute)
			tt.between(m)
			got, err := c.Run(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			f, ok := expectExactly(t, got, tt.want...)
			if !ok {
				return
			}
			if f.Severity != tt.severity || !strings.Contains(f.Evidence.Summary, tt.seen) || !strings.Contains(f.Fix, tt.fix) ||
				(tt.sample != "" && !slices.ContainsFunc(f.Evidence.Samples, func(s string) bool { return strings.HasPrefix(s, tt.sample) })) {
				t.Errorf("finding %+v\nwant severity %s, %q in the summary, %q in the fix, a sample starting %q", f, tt.severity, tt.seen, tt.fix, tt.sample)
			}
		})
	}
}

// A first run compares with vigil's start when that lies within the
// window: every counter was zero then.
func TestIngestCheckFirstRun(t *testing.T) {
	for _, tc := range []struct {
		name    string
		started time.Duration // before now
		want    []string
	}{{"started recently", 2 * time.Minute, []string{"ingest_rejections traces end_before_start"}}, {"started long ago", time.Hour, nil}} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m := selfobs.NewIngestMetrics(reg)
			now := time.Now()
			start := prometheus.NewGauge(prometheus.GaugeOpts{Name: "process_start_time_seconds", Help: "Start time."})
			start.Set(float64(now.Add(-tc.started).Unix()))
			reg.MustRegister(start)
			m.Receive("traces", 100)
			m.Reject("traces", "end_before_start", 5)
			got, err := (&IngestCheck{Gatherer: reg, Now: func() time.Time { return now }}).Run(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			expectFindings(t, got, tc.want...)
			if len(got) != len(tc.want) {
				t.Fatalf("findings %+v, want %d", got, len(tc.want))
			}
		})
	}
}

func TestIncrease(t *testing.T) {
	for _, tc := range []struct{ a, b, want float64 }{{0, 5, 5}, {5, 5, 0}, {10, 3, 3}} {
		if got := increase(tc.a, tc.b); got != tc.want {
			t.Errorf("increase(%v, %v) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}
