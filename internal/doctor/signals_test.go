package doctor

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSignalsCheck(t *testing.T) {
	demo := demoServices()
	notScraped := func(s *fakeService) { s.instance, s.path, s.metrics = "", "", nil }
	tests := []struct {
		name     string
		svcs     []fakeService
		want     []string
		severity Severity
		// substrings of the first finding's summary and fix, and a sample
		// it must show.
		seen, fix, sample string
	}{
		{name: "healthy demo", svcs: demo},
		{
			name: "payments sends no logs",
			svcs: withService(demo, "payments", func(s *fakeService) { s.logs = 0 }),
			want: []string{"service_signal_gap payments"}, severity: Warning,
			seen: "it sent traces (40 requests) but no logs", fix: "OTLP",
		},
		{
			name: "payments is not scraped",
			svcs: withService(demo, "payments", notScraped),
			want: []string{"service_signal_gap payments"}, severity: Warning,
			seen: "but no metrics", fix: "job_name: payments",
		},
		{
			name: "no metrics and no logs make one finding",
			svcs: withService(withService(demo, "payments", notScraped), "payments", func(s *fakeService) { s.logs = 0 }),
			want: []string{"service_signal_gap payments"}, severity: Warning,
			seen: "but no metrics; no logs",
		},
		{
			name: "orders scraped under another job name",
			svcs: withService(demo, "orders", func(s *fakeService) {
				s.job = "orders-svc"
				s.metrics = []string{"go_goroutines", "http_server_request_duration_seconds_count"}
			}),
			want: []string{"service_signal_gap orders"}, severity: Warning,
			seen: `its metrics carry job="orders-svc"`, fix: "job_name: orders", sample: `job="orders-svc"`,
		},
		{
			name: "catalog logs as Catalog",
			svcs: withService(demo, "catalog", func(s *fakeService) { s.logsAs = "Catalog" }),
			want: []string{"service_signal_gap catalog"}, severity: Warning,
			seen: `its logs carry service.name="Catalog"`, fix: "OTEL_SERVICE_NAME=catalog", sample: `service.name="Catalog"`,
		},
		{
			name: "a traces-only deployment is told, not warned",
			svcs: func() []fakeService {
				var out []fakeService
				for _, s := range demo[:4] {
					notScraped(&s)
					out = append(out, s)
				}
				return out
			}(),
			want:     []string{"service_signal_gap catalog", "service_signal_gap gateway", "service_signal_gap orders", "service_signal_gap payments"},
			severity: Info, seen: "but no metrics",
		},
		{
			name: "a service that sent a handful of spans is not judged",
			svcs: withService(demo, "cron", func(s *fakeService) { s.spans = 3 }),
		},
		{
			name: "another traced service's name is not a rename",
			svcs: withService(withService(demo, "orders", func(s *fakeService) { s.logs = 0 }), "orders-svc", func(s *fakeService) { s.spans, s.logs = 40, 40 }),
			want: []string{"service_signal_gap orders", "service_signal_gap orders-svc"}, severity: Warning,
			seen: "but no logs",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := buildWorld(t, tt.svcs)
			got, err := SignalsCheck{Spans: w.store, Logs: w.store, Metrics: w.db, Now: func() time.Time { return w.now }}.Run(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			f, ok := expectExactly(t, got, tt.want...)
			for _, f := range got {
				if f.Severity != tt.severity {
					t.Errorf("%s: severity %s, want %s", f.Subject, f.Severity, tt.severity)
				}
			}
			if !ok {
				return
			}
			if !strings.Contains(f.Evidence.Summary, tt.seen) || !strings.Contains(f.Fix, tt.fix) ||
				(tt.sample != "" && !slices.Contains(f.Evidence.Samples, tt.sample)) {
				t.Errorf("finding %+v\nwant %q in the summary, %q in the fix, sample %q", f, tt.seen, tt.fix, tt.sample)
			}
		})
	}
}
