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
	"github.com/prometheus/prometheus/scrape"
	promstorage "github.com/prometheus/prometheus/storage"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage"
)

// MetricsCheck finds services whose metrics endpoint is wired to the wrong
// registry or whose handlers record nothing (metrics_sdk_missing): a scrape
// target that is up but serves none of the runtime series every metrics SDK
// registers by default, or a traced service that handles requests while
// none of its metrics is a RED metric. Both look healthy (up is 1, the
// target answers) while dashboards and alerts on those series stay empty.
type MetricsCheck struct {
	Targets Targets
	Metrics promstorage.Queryable
	Spans   storage.REDReader
	// Window is the time looked at for spans and RED series (15m if 0);
	// Lookback how recent a target's runtime series must be (5m if 0).
	Window, Lookback time.Duration
	// MinSpans is the fewest server spans that make a service expected to
	// have RED metrics, and the fewest requests that make it worth judging
	// (20 if 0).
	MinSpans int64
	Now      func() time.Time
}

// Name implements Check.
func (c MetricsCheck) Name() string { return "metrics" }

// runtimeSeries matches the series runtime collectors register: Go's and
// the process collector, and their Java, Python, Node.js, .NET, Ruby,
// Erlang and OpenTelemetry counterparts, so that a non-Go service is not
// reported for lacking go_* series.
var runtimeSeries = regexp.MustCompile(`^(go|process|jvm|python|nodejs|v8js|dotnet|ruby|erlang_vm|beam|php|runtime|process_runtime)[._]`)

// sdkGap is what one service's (or unclaimed target's) metrics lack.
type sdkGap struct {
	// noRuntime lists targets up without runtime series, as "pool URL".
	noRuntime []string
	series    []string // the targets as series selectors
	exposed   []string // a few metric names the targets do serve
	// serverSpans is set when the service handled requests but has no RED
	// series; ops names a few of its server operations.
	serverSpans int64
	ops         []string
}

// Run implements Check.
func (c MetricsCheck) Run(ctx context.Context) ([]Finding, error) {
	window := cmp.Or(c.Window, 15*time.Minute)
	lookback := cmp.Or(c.Lookback, 5*time.Minute)
	minSpans := cmp.Or(c.MinSpans, 20)
	end := clockOf(c.Now)()
	start := end.Add(-window)
	traced, err := tracedServices(ctx, c.Spans, start, end, minSpans)
	if err != nil {
		return nil, err
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

	gaps := map[string]*sdkGap{}
	gap := func(subject string) *sdkGap {
		if gaps[subject] == nil {
			gaps[subject] = &sdkGap{}
		}
		return gaps[subject]
	}
	// Which service each target belongs to, to report a target under its
	// service's name.
	byTarget := map[targetKey]string{}
	byJob := map[string]string{}
	for _, svc := range slices.Sorted(maps.Keys(traced)) {
		m, err := ix.lookup(ctx, svc)
		if err != nil {
			return nil, err
		}
		if !m.found() {
			continue // no metrics at all: service_signal_gap says so
		}
		for _, l := range m.labels {
			if l.Name == model.JobLabel {
				byJob[l.Value] = svc
			}
		}
		for _, t := range m.targets {
			byTarget[t] = svc
		}
		red, err := ix.hasRED(ctx, m)
		if err != nil || red {
			if err != nil {
				return nil, err
			}
			continue
		}
		spans, ops, err := serverSpans(ctx, c.Spans, svc, start, end)
		if err != nil {
			return nil, err
		}
		if spans >= minSpans {
			g := gap(svc)
			g.serverSpans, g.ops = spans, ops
		}
	}

	unclaimed := map[string]bool{}
	if c.Targets != nil {
		rq, err := c.Metrics.Querier(end.Add(-lookback).UnixMilli(), end.UnixMilli())
		if err != nil {
			return nil, fmt.Errorf("doctor: open querier: %w", err)
		}
		defer rq.Close()
		pools := c.Targets.TargetsActive()
		for _, pool := range slices.Sorted(maps.Keys(pools)) {
			for _, t := range pools[pool] {
				if !judgeRuntime(t) {
					continue
				}
				k := targetKey{t.GetValue(model.JobLabel), cmp.Or(t.GetValue(model.InstanceLabel), t.GetValue(model.AddressLabel))}
				names, err := labelValues(ctx, rq, model.MetricNameLabel,
					labels.MustNewMatcher(labels.MatchEqual, model.JobLabel, k.job),
					labels.MustNewMatcher(labels.MatchEqual, model.InstanceLabel, k.instance))
				if err != nil {
					return nil, err
				}
				if len(names) == 0 || slices.ContainsFunc(names, runtimeSeries.MatchString) {
					continue // nothing stored yet, or fine
				}
				subject := cmp.Or(byTarget[k], byJob[k.job])
				if subject == "" {
					subject = pool + " " + t.URL().String()
					unclaimed[subject] = true
				}
				g := gap(subject)
				g.noRuntime = append(g.noRuntime, pool+" "+t.URL().String())
				g.series = append(g.series, k.String())
				for _, n := range names {
					if n != "up" && !strings.HasPrefix(n, "scrape_") && len(g.exposed) < 3 {
						g.exposed = append(g.exposed, n)
					}
				}
			}
		}
	}

	out := make([]Finding, 0, len(gaps))
	for _, subject := range slices.Sorted(maps.Keys(gaps)) {
		out = append(out, gaps[subject].finding(subject, unclaimed[subject], window))
	}
	return out, nil
}

// judgeRuntime tells whether a target is expected to serve runtime series:
// it was scraped successfully, and it is an application's own metrics
// endpoint, not a probe (blackbox, SNMP: parameters in the URL) or a
// federation endpoint serving other jobs' series.
func judgeRuntime(t *scrape.Target) bool {
	if t.Health() != scrape.HealthGood {
		return false
	}
	u := t.URL()
	switch u.Path {
	case "/probe", "/snmp", "/federate":
		return false
	}
	return u.RawQuery == ""
}

// serverSpans counts the service's server spans and names their busiest
// operations.
func serverSpans(ctx context.Context, r storage.REDReader, svc string, start, end time.Time) (int64, []string, error) {
	rows, err := r.RED(ctx, storage.REDQuery{Start: start, End: end, Service: svc})
	if err != nil {
		return 0, nil, fmt.Errorf("doctor: operations of %s: %w", svc, err)
	}
	var n int64
	var server []storage.REDRow
	for _, row := range rows {
		if row.Kind == ptrace.SpanKindServer {
			n += row.Calls
			server = append(server, row)
		}
	}
	slices.SortStableFunc(server, func(a, b storage.REDRow) int { return cmp.Compare(b.Calls, a.Calls) })
	var ops []string
	for _, row := range server[:min(len(server), 3)] {
		ops = append(ops, row.Operation)
	}
	return n, ops, nil
}

const (
	runtimeFix = "serve a registry with the runtime collectors: with the vigil SDK mount /metrics with svc.Mount(mux) and register your own metrics on svc.Registry; with client_golang call reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})) on the registry you serve with promhttp.HandlerFor(reg, promhttp.HandlerOpts{})"
	redFix     = "wrap the server in instrumentation that records request durations on the registry /metrics serves: with the vigil SDK svc.Middleware(handler) for HTTP and svc.GRPCServerOptions() for gRPC; with client_golang promhttp.InstrumentHandlerDuration; with OpenTelemetry otelhttp.NewHandler or otelgrpc with a metrics exporter"
)

func (g *sdkGap) finding(subject string, unclaimed bool, window time.Duration) Finding {
	f := Finding{Code: "metrics_sdk_missing", Severity: Warning, Subject: subject,
		Evidence: Evidence{Values: map[string]float64{}}}
	var targets string
	if len(g.noRuntime) > 0 {
		targets = "its target " + g.noRuntime[0] + " is"
		if len(g.noRuntime) > 1 {
			targets = fmt.Sprintf("%d of its targets (%s, ...) are", len(g.noRuntime), g.noRuntime[0])
		}
		f.Evidence.Values["targets_without_runtime"] = float64(len(g.noRuntime))
		f.Evidence.Samples = append(f.Evidence.Samples, g.series...)
		f.Evidence.Samples = append(f.Evidence.Samples, g.exposed...)
	}
	if g.serverSpans > 0 {
		f.Evidence.Values["server_spans"] = float64(g.serverSpans)
		f.Evidence.Window = lastWindow(window)
		for _, op := range g.ops {
			f.Evidence.Samples = append(f.Evidence.Samples, "span "+op)
		}
	}
	exposed := ""
	if len(g.exposed) > 0 {
		exposed = " (it serves " + strings.Join(g.exposed, ", ") + ")"
	}
	switch {
	case unclaimed:
		f.Severity = Info
		f.Evidence.Summary = "the target is up but serves none of the Go runtime or process series" + exposed
		f.Cause = "the registry served at /metrics has no runtime collectors; or the target is not an application with a metrics SDK (a proxy or appliance exposes no runtime series), in which case this is expected"
		f.Fix = runtimeFix
	case len(g.noRuntime) > 0 && g.serverSpans > 0:
		f.Evidence.Summary = fmt.Sprintf("%s up but serves none of the Go runtime or process series, and no RED metrics for the %d requests its traces show%s", targets, g.serverSpans, exposed)
		f.Cause = "its /metrics serves a registry of its own (such as promhttp.HandlerFor on a fresh prometheus.NewRegistry()) instead of the one the SDK registers the runtime collectors and RED histograms on"
		f.Fix = "serve the SDK's registry: with the vigil SDK mount /metrics with svc.Mount(mux) and register your own metrics on svc.Registry; with client_golang register collectors.NewGoCollector() and collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}) on the registry your instrumentation records to, and serve that one with promhttp.HandlerFor(reg, promhttp.HandlerOpts{})"
	case len(g.noRuntime) > 0:
		f.Evidence.Summary = targets + " up but serves none of the Go runtime or process series (go_goroutines, process_cpu_seconds_total, ...)" + exposed
		f.Cause = "the registry its /metrics serves has no runtime collectors: typically a fresh prometheus.NewRegistry() without collectors.NewGoCollector and collectors.NewProcessCollector"
		f.Fix = runtimeFix
	default:
		f.Evidence.Summary = fmt.Sprintf("its traces show %d requests, but none of its metrics is a RED metric (http_server_*, grpc_server_*, rpc_server_*, http_requests_*)", g.serverSpans)
		f.Cause = "its HTTP or gRPC server is not wrapped by metrics instrumentation, or that instrumentation records to a registry its /metrics does not serve"
		f.Fix = redFix
	}
	return f
}
