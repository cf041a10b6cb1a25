package doctor

import (
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/util/teststorage"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage/memory"
)

// fakeService is one service of a test world: what it sends, and what its
// scrape target serves.
type fakeService struct {
	name string
	// kind of its spans (server if 0); spans and logs count them.
	kind        ptrace.SpanKind
	spans, logs int
	// logsAs is the service.name its logs carry, when not name.
	logsAs string
	// job and instance label its series (job "shop" if empty); with a
	// path it is also an active scrape target.
	job, instance, path string
	metrics             []string
}

// demoServices is the healthy demo shop as vigil sees it with
// examples/vigil.yaml: four services under one scrape job, each serving
// runtime, build_info and RED series, sending traces and logs.
func demoServices() []fakeService {
	svc := func(name, port string, red ...string) fakeService {
		return fakeService{
			name: name, spans: 40, logs: 40, instance: "127.0.0.1:" + port, path: "/metrics",
			metrics: append([]string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_cpu_seconds_total", name + "_build_info", "log_records_dropped_total"}, red...),
		}
	}
	return []fakeService{
		svc("gateway", "8081", "http_server_request_duration_seconds_count", "http_client_request_duration_seconds_count"),
		svc("catalog", "8082", "http_server_request_duration_seconds_count", "catalog_products_served_total"),
		svc("orders", "8083", "http_server_request_duration_seconds_count", "grpc_client_handling_seconds_count"),
		svc("payments", "8084", "grpc_server_handling_seconds_count", "http_server_requests_in_flight"),
		// vigil scrapes itself; it sends no traces.
		{name: "vigil", job: "vigil", instance: "localhost:7070", path: "/metrics", metrics: []string{"go_goroutines", "process_cpu_seconds_total", "vigil_build_info", "vigil_received_total"}},
	}
}

// withService returns svcs with the service called name changed by edit
// (or added, when none is).
func withService(svcs []fakeService, name string, edit func(*fakeService)) []fakeService {
	out := slices.Clone(svcs)
	for i := range out {
		if out[i].name == name {
			edit(&out[i])
			return out
		}
	}
	s := fakeService{name: name}
	edit(&s)
	return append(out, s)
}

// metricsWorld is what the checks read: spans and logs in memory, series in
// a TSDB, and the scrape targets.
type metricsWorld struct {
	store   *memory.Store
	db      *teststorage.TestStorage
	targets fixedTargets
	now     time.Time
}

func buildWorld(t *testing.T, svcs []fakeService) metricsWorld {
	t.Helper()
	w := metricsWorld{store: memory.New(), db: teststorage.New(t), targets: fixedTargets{}, now: time.Now()}
	t.Cleanup(func() { _ = w.store.Close(); _ = w.db.Close() })
	ts := func(d time.Duration) pcommon.Timestamp { return pcommon.NewTimestampFromTime(w.now.Add(d)) }
	td := ptrace.NewTraces()
	ld := plog.NewLogs()
	app := w.db.Appender(t.Context())
	add := func(ls labels.Labels) {
		if _, err := app.Append(0, ls, w.now.Add(-time.Minute).UnixMilli(), 1); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range svcs {
		if s.spans > 0 {
			rs := td.ResourceSpans().AppendEmpty()
			rs.Resource().Attributes().PutStr("service.name", s.name)
			spans := rs.ScopeSpans().AppendEmpty().Spans()
			for j := range s.spans {
				sp := spans.AppendEmpty()
				sp.SetTraceID(pcommon.TraceID{byte(i + 1), byte(j + 1)})
				sp.SetSpanID(pcommon.SpanID{byte(i + 1), byte(j + 1)})
				sp.SetName("GET /" + s.name)
				sp.SetKind(cmpKind(s.kind))
				sp.SetStartTimestamp(ts(-2 * time.Minute))
				sp.SetEndTimestamp(ts(-2*time.Minute + time.Millisecond))
			}
			// What vigil derives from the spans: it must not count as
			// the service's own metrics.
			add(labels.FromStrings("__name__", "traces_span_metrics_calls_total", "service_name", s.name, "span_kind", "SPAN_KIND_SERVER"))
		}
		if s.logs > 0 {
			rl := ld.ResourceLogs().AppendEmpty()
			rl.Resource().Attributes().PutStr("service.name", cmpString(s.logsAs, s.name))
			recs := rl.ScopeLogs().AppendEmpty().LogRecords()
			for range s.logs {
				r := recs.AppendEmpty()
				r.SetTimestamp(ts(-2 * time.Minute))
				r.Body().SetStr("line")
			}
			add(labels.FromStrings("__name__", "vigil_log_records_total", "service_name", cmpString(s.logsAs, s.name), "severity", "INFO"))
		}
		job := cmpString(s.job, "shop")
		if s.instance == "" && len(s.metrics) == 0 {
			continue
		}
		for _, m := range s.metrics {
			add(labels.FromStrings("__name__", m, "job", job, "instance", s.instance))
		}
		if s.path == "" {
			continue
		}
		for _, m := range []string{"up", "scrape_duration_seconds", "scrape_samples_scraped"} {
			add(labels.FromStrings("__name__", m, "job", job, "instance", s.instance))
		}
		u, err := url.Parse("http://" + s.instance + s.path)
		if err != nil {
			t.Fatal(err)
		}
		lbls := []string{
			"__address__", s.instance, "__scheme__", "http", "__metrics_path__", u.Path,
			"job", job, "instance", s.instance, "__scrape_interval__", "15s", "__scrape_timeout__", "10s",
		}
		for k, v := range u.Query() {
			lbls = append(lbls, "__param_"+k, v[0])
		}
		tg := scrape.NewTarget(labels.FromStrings(lbls...), &config.ScrapeConfig{}, nil, nil)
		tg.Report(w.now.Add(-10*time.Second), 10*time.Millisecond, nil)
		w.targets[job] = append(w.targets[job], tg)
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := w.store.WriteTraces(t.Context(), td); err != nil {
		t.Fatal(err)
	}
	if err := w.store.WriteLogs(t.Context(), ld); err != nil {
		t.Fatal(err)
	}
	return w
}

func cmpKind(k ptrace.SpanKind) ptrace.SpanKind {
	if k == ptrace.SpanKindUnspecified {
		return ptrace.SpanKindServer
	}
	return k
}

func cmpString(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// codesAndSubjects renders findings as "code subject" for comparison.
func codesAndSubjects(fs []Finding) []string {
	out := []string{}
	for _, f := range fs {
		out = append(out, f.Code+" "+f.Subject)
	}
	return out
}

// expectExactly holds got to want ("code subject" each) in that order,
// each once, counting them on the scorecard as expectFindings does, and
// checks the shape of every finding. It returns the first finding, or ok
// false when there is none.
func expectExactly(t *testing.T, got []Finding, want ...string) (first Finding, ok bool) {
	t.Helper()
	expectFindings(t, got, want...)
	if g := codesAndSubjects(got); !slices.Equal(g, want) {
		t.Fatalf("findings %q, want %q in this order, once each\n%+v", g, want, got)
	}
	for _, f := range got {
		checkFinding(t, f)
	}
	if len(got) == 0 {
		return Finding{}, false
	}
	return got[0], true
}

// checkFinding asserts the shape every finding must have.
func checkFinding(t *testing.T, f Finding) {
	t.Helper()
	if f.Evidence.Summary == "" || f.Cause == "" || f.Fix == "" || strings.Contains(f.Evidence.Summary, "\n") {
		t.Errorf("finding %s %s lacks a one-line summary, a cause or a fix: %+v", f.Code, f.Subject, f)
	}
	if len(f.Evidence.Samples) > MaxSamples {
		t.Errorf("finding %s %s has %d samples", f.Code, f.Subject, len(f.Evidence.Samples))
	}
}

func TestMetricsCheck(t *testing.T) {
	demo := demoServices()
	tests := []struct {
		name string
		svcs []fakeService
		want []string
		// severity of the first finding, and substrings of its summary
		// and fix.
		severity     Severity
		seen, absent string
		fix          string
	}{
		{name: "healthy demo", svcs: demo},
		{
			name: "unregistered-metrics: catalog serves a fresh registry",
			svcs: withService(demo, "catalog", func(s *fakeService) { s.metrics = []string{"catalog_products_served_total"} }),
			want: []string{"metrics_sdk_missing catalog"}, severity: Warning,
			seen: "shop http://127.0.0.1:8082/metrics is up but serves none of the Go runtime or process series, and no RED metrics for the 40 requests",
			fix:  "svc.Mount(mux)",
		},
		{
			name: "runtime collectors missing, RED fine",
			svcs: withService(demo, "orders", func(s *fakeService) {
				s.metrics = []string{"orders_build_info", "http_server_request_duration_seconds_count"}
			}),
			want: []string{"metrics_sdk_missing orders"}, severity: Warning,
			seen: "serves none of the Go runtime", absent: "RED", fix: "collectors.NewGoCollector()",
		},
		{
			name: "RED histograms missing, runtime fine",
			svcs: withService(demo, "payments", func(s *fakeService) {
				s.metrics = []string{"go_goroutines", "process_cpu_seconds_total", "payments_build_info"}
			}),
			want: []string{"metrics_sdk_missing payments"}, severity: Warning,
			seen: "its traces show 40 requests, but none of its metrics is a RED metric", fix: "svc.GRPCServerOptions()",
		},
		{
			name: "client-only service needs no RED metrics",
			svcs: withService(demo, "batch", func(s *fakeService) {
				*s = fakeService{name: "batch", kind: ptrace.SpanKindClient, spans: 40, logs: 40, instance: "127.0.0.1:8085", path: "/metrics",
					metrics: []string{"go_goroutines", "batch_build_info", "batch_jobs_total"}}
			}),
		},
		{
			name: "too few requests to judge",
			svcs: withService(demo, "payments", func(s *fakeService) {
				s.spans = 5
				s.metrics = []string{"go_goroutines", "payments_build_info"}
			}),
		},
		{
			name: "a JVM service has no go_ series but jvm_ ones",
			svcs: withService(demo, "billing", func(s *fakeService) {
				*s = fakeService{name: "billing", spans: 40, logs: 40, job: "billing", instance: "10.0.0.5:8080", path: "/actuator/prometheus",
					metrics: []string{"jvm_memory_used_bytes", "process_uptime_seconds", "http_server_requests_seconds_count"}}
			}),
		},
		{
			name: "OTLP metrics under job=service.name",
			svcs: withService(demo, "checkout", func(s *fakeService) {
				*s = fakeService{name: "checkout", spans: 40, logs: 40, job: "shop/checkout", instance: "0b5c0a3e",
					metrics: []string{"http_server_request_duration_seconds_count", "target_info"}}
			}),
		},
		{
			name: "runtime over OTLP under job=orders, RED scraped under job=shop",
			svcs: withService(withService(demo, "orders", func(s *fakeService) {
				s.metrics = []string{"go_goroutines", "orders_build_info", "http_server_request_duration_seconds_count"}
			}), "orders-runtime", func(s *fakeService) {
				*s = fakeService{name: "orders-runtime", job: "orders", instance: "0b5c0a3e", metrics: []string{"process_runtime_go_goroutines"}}
			}),
		},
		{
			name: "OTLP metrics without RED",
			svcs: withService(demo, "checkout", func(s *fakeService) {
				*s = fakeService{name: "checkout", spans: 40, logs: 40, job: "checkout", instance: "0b5c0a3e",
					metrics: []string{"checkout_carts_total", "target_info"}}
			}),
			want: []string{"metrics_sdk_missing checkout"}, severity: Warning, seen: "none of its metrics is a RED metric",
		},
		{
			name: "a target no traced service claims is only info",
			svcs: withService(demo, "edge", func(s *fakeService) {
				*s = fakeService{name: "edge", job: "edge", instance: "10.0.0.9:8404", path: "/metrics", metrics: []string{"haproxy_up", "haproxy_frontend_bytes_in_total"}}
			}),
			want: []string{"metrics_sdk_missing edge http://10.0.0.9:8404/metrics"}, severity: Info,
			seen: "serves haproxy_frontend_bytes_in_total", fix: "collectors.NewGoCollector()",
		},
		{
			name: "blackbox probes are not judged",
			svcs: withService(demo, "probe", func(s *fakeService) {
				*s = fakeService{name: "probe", job: "blackbox", instance: "blackbox:9115", path: "/probe?module=http_2xx&target=shop", metrics: []string{"probe_success"}}
			}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := buildWorld(t, tt.svcs)
			got, err := MetricsCheck{Targets: w.targets, Metrics: w.db, Spans: w.store, Now: func() time.Time { return w.now }}.Run(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			f, ok := expectExactly(t, got, tt.want...)
			if !ok {
				return
			}
			if f.Severity != tt.severity || !strings.Contains(f.Evidence.Summary, tt.seen) || !strings.Contains(f.Fix, tt.fix) ||
				(tt.absent != "" && strings.Contains(f.Evidence.Summary, tt.absent)) {
				t.Errorf("finding %+v\nwant severity %s, %q (and not %q) in the summary, %q in the fix", f, tt.severity, tt.seen, tt.absent, tt.fix)
			}
		})
	}
}

func TestNormalName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"orders", "orders"}, {"Orders", "orders"}, {"orders-svc", "orders"}, {"orders_service", "orders"},
		{"shop/orders", "orders"}, {"service", "service"}, {"payments-api", "paymentsapi"}, {"webapp", "web"},
	} {
		if got := normalName(tc.in); got != tc.want {
			t.Errorf("normalName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct{ in, want string }{{"catalog", "catalog"}, {"Check-Out", "check_out"}, {"3d", "_3d"}} {
		if got := metricPrefix(tc.in); got != tc.want {
			t.Errorf("metricPrefix(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
