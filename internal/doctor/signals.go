package doctor

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"

	"github.com/vigil-observability/vigil/internal/storage"
)

// SignalsCheck finds services that send traces but no metrics or no logs,
// or whose metrics or logs arrive under another name than their traces
// (service_signal_gap): from such a service's traces nobody gets to its
// charts or its logs.
//
// Only traced services are judged: a job that sends only metrics (vigil
// itself, node exporters, Prometheus) is normal.
type SignalsCheck struct {
	Spans   storage.REDReader
	Logs    storage.LogStatsReader
	Metrics promstorage.Queryable
	// Window is the time looked at (15m if 0); MinSpans the fewest
	// requests (entry spans) that make a service worth judging (20 if 0).
	Window   time.Duration
	MinSpans int64
	Now      func() time.Time
}

// Name implements Check.
func (c SignalsCheck) Name() string { return "signals" }

// signalGap is what one traced service lacks.
type signalGap struct {
	service  string
	requests int64
	// noMetrics and noLogs are set when nothing under any similar name
	// was found either; metricsAs and logsAs list the similar names.
	noMetrics, noLogs bool
	metricsAs, logsAs []string
}

// Run implements Check.
func (c SignalsCheck) Run(ctx context.Context) ([]Finding, error) {
	window := cmp.Or(c.Window, 15*time.Minute)
	end := clockOf(c.Now)()
	start := end.Add(-window)
	traced, err := tracedServices(ctx, c.Spans, start, end, cmp.Or(c.MinSpans, 20))
	if err != nil || len(traced) == 0 {
		return nil, err
	}
	stats, err := c.Logs.LogTraceStats(ctx, start, end)
	if err != nil {
		return nil, fmt.Errorf("doctor: log stats: %w", err)
	}
	var logged []string
	for _, s := range stats {
		if s.Total > 0 {
			logged = append(logged, s.Service)
		}
	}
	q, err := c.Metrics.Querier(start.UnixMilli(), end.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("doctor: open querier: %w", err)
	}
	defer q.Close()
	ix, err := newMetricIndex(ctx, q, start, end)
	if err != nil {
		return nil, err
	}
	var gaps []signalGap
	anyMetrics, anyLogs := false, false
	for _, svc := range slices.Sorted(maps.Keys(traced)) {
		g := signalGap{service: svc, requests: traced[svc]}
		m, err := ix.lookup(ctx, svc)
		if err != nil {
			return nil, err
		}
		if m.found() {
			anyMetrics = true
		} else {
			g.metricsAs = ix.similar(svc, traced)
			g.noMetrics = len(g.metricsAs) == 0
			anyMetrics = anyMetrics || !g.noMetrics
		}
		if slices.Contains(logged, svc) {
			anyLogs = true
		} else {
			for _, l := range similarNames(svc, logged, traced) {
				g.logsAs = append(g.logsAs, fmt.Sprintf("service.name=%q", l))
			}
			g.noLogs = len(g.logsAs) == 0
			anyLogs = anyLogs || !g.noLogs
		}
		if g.noMetrics || g.noLogs || len(g.metricsAs) > 0 || len(g.logsAs) > 0 {
			gaps = append(gaps, g)
		}
	}
	out := make([]Finding, 0, len(gaps))
	for _, g := range gaps {
		out = append(out, g.finding(window, anyMetrics, anyLogs))
	}
	return out, nil
}

// finding describes a gap. A missing signal is only a warning when other
// services do send it: a deployment where no service sends metrics (or
// logs) chose not to, and vigil derives request rates from the spans.
func (g signalGap) finding(window time.Duration, anyMetrics, anyLogs bool) Finding {
	sev := Info
	var seen, causes, fixes []string
	values := map[string]float64{"requests": float64(g.requests)}
	var samples []string
	switch {
	case g.noMetrics:
		seen = append(seen, "no metrics")
		values["metric_series"] = 0
		if anyMetrics {
			sev = Warning
		}
		causes = append(causes, "vigil neither scrapes the service's metrics endpoint nor receives OTLP metrics from it")
		fixes = append(fixes, fmt.Sprintf("add a scrape config for its /metrics (scrape_configs: [{job_name: %s, static_configs: [{targets: [\"host:port\"]}]}]; with the vigil SDK, serve /metrics with svc.Mount(mux)) or send OTLP metrics to vigil with the same service.name", g.service))
	case len(g.metricsAs) > 0:
		seen = append(seen, "its metrics carry "+strings.Join(g.metricsAs, ", "))
		samples = append(samples, g.metricsAs...)
		sev = Warning
		causes = append(causes, fmt.Sprintf("its metrics name the service differently than its traces (service.name=%q), so nothing joins them", g.service))
		fixes = append(fixes, fmt.Sprintf("use one name: set job_name: %s in the scrape config (or a relabel_configs rule with target_label: job and replacement: %s), or set OTEL_SERVICE_NAME to the same value for every signal", g.service, g.service))
	}
	switch {
	case g.noLogs:
		seen = append(seen, "no logs")
		values["logs"] = 0
		if anyLogs {
			sev = Warning
		}
		causes = append(causes, "its logs do not reach vigil: the logger writes only to stdout or a file, or no OTLP log exporter is configured")
		fixes = append(fixes, "export its logs over OTLP with the same service.name: with the vigil SDK log through svc.Logger; with the OpenTelemetry SDK add a LoggerProvider with an OTLP exporter (or a log bridge such as otelslog), or have a collector ship its log files")
	case len(g.logsAs) > 0:
		seen = append(seen, "its logs carry "+strings.Join(g.logsAs, ", "))
		samples = append(samples, g.logsAs...)
		sev = Warning
		causes = append(causes, fmt.Sprintf("its logs are sent under another service.name than its traces (%q)", g.service))
		fixes = append(fixes, fmt.Sprintf("give the logger provider the same resource as the tracer provider (OTEL_SERVICE_NAME=%s for both)", g.service))
	}
	return Finding{
		Code: "service_signal_gap", Severity: sev, Subject: g.service,
		Evidence: Evidence{
			Summary: fmt.Sprintf("it sent traces (%d requests) but %s", g.requests, strings.Join(seen, "; ")),
			Values:  values,
			Window:  lastWindow(window),
			Samples: samples,
		},
		Cause: strings.Join(causes, "; "),
		Fix:   strings.Join(fixes, "; "),
	}
}

// tracedServices returns the services with at least min requests (server
// and consumer spans, or all spans of a service that has neither) started
// in [start, end), with their counts.
func tracedServices(ctx context.Context, r storage.REDReader, start, end time.Time, min int64) (map[string]int64, error) {
	rows, err := r.RED(ctx, storage.REDQuery{Start: start, End: end})
	if err != nil {
		return nil, fmt.Errorf("doctor: traced services: %w", err)
	}
	out := map[string]int64{}
	for _, row := range rows {
		if row.Calls >= min {
			out[row.Service] = row.Calls
		}
	}
	return out, nil
}

// identityLabels name a service on series: job (the scrape job, or
// service.name for OTLP metrics), and the service_name and service labels
// some exporters and relabelings add.
var identityLabels = []string{model.JobLabel, "service_name", "service"}

// ownSeries leaves out the series vigil derives from spans and logs: they
// carry service_name, but they are not the service's own metrics.
var ownSeries = labels.MustNewMatcher(labels.MatchNotRegexp, model.MetricNameLabel,
	"traces_span_metrics_.+|traces_service_graph_.+|vigil_log_records_total")

// redMetrics matches request rate, error and duration metrics of servers,
// under the names client_golang, the vigil SDK, OpenTelemetry (both
// semantic convention generations, translated or not), gRPC and Spring use.
var redMetrics = labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel,
	`(.+_)?(http|grpc|rpc)[._]server[._].+|(.+_)?http_requests?_.+`)

// genericPrefixes are metric name prefixes that do not name a service, so a
// service called "go" or "http" is not found through them.
var genericPrefixes = map[string]bool{
	"go": true, "process": true, "http": true, "grpc": true, "rpc": true, "promhttp": true,
	"up": true, "scrape": true, "target": true, "traces": true, "net": true, "jvm": true,
	"python": true, "nodejs": true, "dotnet": true, "system": true, "node": true,
}

// maxSeriesRead bounds the series read to find a service's targets.
const maxSeriesRead = 1000

// targetKey is a scrape target as its series name it.
type targetKey struct{ job, instance string }

func (t targetKey) String() string {
	return fmt.Sprintf("{job=%q, instance=%q}", t.job, t.instance)
}

// serviceMetrics tells where a service's own series are.
type serviceMetrics struct {
	// labels each select series of the service: job="orders".
	labels []labels.Label
	// targets are found through metrics named after the service (the
	// vigil SDK's <service>_build_info, or an application's
	// <service>_orders_total): several services scraped under one job are
	// told apart by instance.
	targets []targetKey
}

func (m serviceMetrics) found() bool { return len(m.labels) > 0 || len(m.targets) > 0 }

// metricIndex finds which series belong to which service.
type metricIndex struct {
	q          promstorage.Querier
	start, end int64 // the querier's range, in milliseconds
	// values holds each identity label's values on own series.
	values map[string][]string
	// names are the metric names of own series, sorted.
	names []string
}

func newMetricIndex(ctx context.Context, q promstorage.Querier, start, end time.Time) (*metricIndex, error) {
	ix := &metricIndex{q: q, start: start.UnixMilli(), end: end.UnixMilli(), values: map[string][]string{}}
	for _, l := range identityLabels {
		vals, err := labelValues(ctx, q, l, ownSeries)
		if err != nil {
			return nil, err
		}
		ix.values[l] = vals
	}
	names, err := labelValues(ctx, q, model.MetricNameLabel, ownSeries)
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	ix.names = names
	return ix, nil
}

// lookup finds the series of svc: those whose identity labels name it
// (a job "shop/orders", as OTLP names a namespaced service, names
// "orders"), and those of the targets that expose metrics named after it.
func (ix *metricIndex) lookup(ctx context.Context, svc string) (serviceMetrics, error) {
	var m serviceMetrics
	for _, l := range identityLabels {
		for _, v := range ix.values[l] {
			if v == svc || (l == model.JobLabel && strings.HasSuffix(v, "/"+svc)) {
				m.labels = append(m.labels, labels.Label{Name: l, Value: v})
			}
		}
	}
	prefix := metricPrefix(svc)
	if strings.Trim(prefix, "_") == "" || genericPrefixes[prefix] {
		return m, nil
	}
	prefix += "_"
	if i, _ := slices.BinarySearch(ix.names, prefix); i == len(ix.names) || !strings.HasPrefix(ix.names[i], prefix) {
		return m, nil
	}
	named, err := labels.NewMatcher(labels.MatchRegexp, model.MetricNameLabel, regexp.QuoteMeta(prefix)+".+")
	if err != nil {
		return m, fmt.Errorf("doctor: metrics of %s: %w", svc, err)
	}
	ss := ix.q.Select(ctx, false, &promstorage.SelectHints{Start: ix.start, End: ix.end, Func: "series", Limit: maxSeriesRead}, named, ownSeries)
	seen := map[targetKey]bool{}
	for ss.Next() {
		ls := ss.At().Labels()
		k := targetKey{ls.Get(model.JobLabel), ls.Get(model.InstanceLabel)}
		if !seen[k] {
			seen[k] = true
			m.targets = append(m.targets, k)
		}
	}
	if err := ss.Err(); err != nil {
		return m, fmt.Errorf("doctor: metrics of %s: %w", svc, err)
	}
	slices.SortFunc(m.targets, func(a, b targetKey) int {
		return cmp.Or(cmp.Compare(a.job, b.job), cmp.Compare(a.instance, b.instance))
	})
	return m, nil
}

// hasRED reports whether any of the service's series is a RED metric.
func (ix *metricIndex) hasRED(ctx context.Context, m serviceMetrics) (bool, error) {
	for _, l := range m.labels {
		if found, err := hasSeries(ctx, ix.q, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, l.Name, l.Value), redMetrics, ownSeries}); err != nil || found {
			return found, err
		}
	}
	for _, t := range m.targets {
		if found, err := hasSeries(ctx, ix.q, []*labels.Matcher{
			labels.MustNewMatcher(labels.MatchEqual, model.JobLabel, t.job),
			labels.MustNewMatcher(labels.MatchEqual, model.InstanceLabel, t.instance),
			redMetrics,
		}); err != nil || found {
			return found, err
		}
	}
	return false, nil
}

// similar returns the identity labels whose values name svc but are
// spelled differently (job="orders-svc" for "orders"), leaving out names
// that other traced services use.
func (ix *metricIndex) similar(svc string, traced map[string]int64) []string {
	var out []string
	for _, l := range identityLabels {
		for _, v := range similarNames(svc, ix.values[l], traced) {
			out = append(out, fmt.Sprintf("%s=%q", l, v))
		}
	}
	return out
}

// similarNames returns the candidates that normalise to svc's name but are
// not svc, nor another traced service.
func similarNames(svc string, candidates []string, traced map[string]int64) []string {
	n := normalName(svc)
	if n == "" {
		return nil
	}
	var out []string
	for _, c := range candidates {
		if _, ok := traced[c]; ok || c == svc {
			continue
		}
		if normalName(c) == n {
			out = append(out, c)
		}
	}
	return out
}

// normalName reduces a service name to what people mean by it: the last
// path element (a job "shop/orders"), lower case, letters and digits only,
// without a trailing "service", "svc", "server", "srv" or "app"; so
// "Orders", "orders-svc" and "orders_service" are all "orders".
func normalName(s string) string {
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		s = s[i+1:]
	}
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		}
	}
	n := b.String()
	for _, suffix := range []string{"service", "server", "svc", "srv", "app"} {
		if t, ok := strings.CutSuffix(n, suffix); ok && t != "" {
			return t
		}
	}
	return n
}

// metricPrefix turns a service name into the metric name prefix
// instrumentation derives from it (as the vigil SDK names
// <service>_build_info): lower case, every other rune than [a-z0-9_] an
// underscore.
func metricPrefix(service string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(service)) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	s := b.String()
	if s != "" && s[0] >= '0' && s[0] <= '9' {
		s = "_" + s
	}
	return s
}
