// Package red serves rate, errors and duration (RED) per service and
// operation, and the service map, computed with PromQL from the series
// vigil records from every stored span (traces_span_metrics_* and
// traces_service_graph_*, the names of the OpenTelemetry Collector's
// spanmetrics and servicegraph connectors). A service that sends only
// traces gets the same charts as one with its own metrics.
//
// Why series rather than scanning spans at query time: see "RED from spans"
// in docs/performance.md; the overview of 50 services costs a few TSDB
// reads instead of an aggregation over every span in the range.
package red

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"

	"github.com/vigil-observability/vigil/internal/query/apitime"
	"github.com/vigil-observability/vigil/internal/query/jaegerapi"
)

// Series names and labels, as the OpenTelemetry Collector's connectors
// write them.
const (
	CallsMetric        = "traces_span_metrics_calls_total"
	DurationMetric     = "traces_span_metrics_duration_seconds"
	GraphRequests      = "traces_service_graph_request_total"
	GraphFailed        = "traces_service_graph_request_failed_total"
	LabelService       = "service_name"
	LabelSpanName      = "span_name"
	LabelSpanKind      = "span_kind"
	LabelStatus        = "status_code"
	statusError        = "STATUS_CODE_ERROR"
	entryKinds         = "SPAN_KIND_SERVER|SPAN_KIND_CONSUMER"
	sparklinePoints    = 30
	defaultRange       = time.Hour
	minRateWindow      = time.Minute // covers several recorder flushes
	maxSeriesPerAnswer = 2000
)

// Options configures the handler.
type Options struct {
	// Queryable is the metric store the span series are in. Required.
	Queryable storage.Queryable
	// Logger receives query failures; nil discards them.
	Logger *slog.Logger
	// Now is the clock for default ranges; nil means time.Now.
	Now func() time.Time
	// Timeout bounds each PromQL evaluation (30s if 0).
	Timeout time.Duration
}

// Routes lists the path patterns Handler serves.
var Routes = []string{"/api/red/services", "/api/red/operations", "/api/servicemap"}

// Service computes RED figures and the service graph.
type Service struct {
	engine    *promql.Engine
	queryable storage.Queryable
	logger    *slog.Logger
	now       func() time.Time
}

// New returns a Service with its own PromQL engine.
func New(opts Options) (*Service, error) {
	if opts.Queryable == nil {
		return nil, errors.New("red: Options.Queryable is required")
	}
	s := &Service{queryable: opts.Queryable, logger: opts.Logger, now: opts.Now}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	s.engine = promql.NewEngine(promql.EngineOpts{
		Logger:     s.logger.With("component", "red query engine"),
		MaxSamples: 50_000_000, Timeout: timeout,
		LookbackDelta: 5 * time.Minute,
	})
	return s, nil
}

// Handler serves Routes.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/red/services", s.services)
	mux.HandleFunc("GET /api/red/operations", s.operations)
	mux.HandleFunc("GET /api/servicemap", s.serviceMap)
	for _, r := range Routes {
		mux.HandleFunc(r, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, "method not allowed; use GET")
		})
	}
	return mux
}

// window is a request's time range.
type window struct {
	start, end time.Time
}

func (w window) rangeSel() string { return promDuration(w.end.Sub(w.start)) }

func (w window) seconds() float64 { return w.end.Sub(w.start).Seconds() }

// step is the sparkline resolution; rateWindow the range each point's rate
// covers, never shorter than a few recorder flushes.
func (w window) step() time.Duration {
	return max(time.Second, (w.end.Sub(w.start) / sparklinePoints).Truncate(time.Second))
}

func (w window) rateWindow() string { return promDuration(max(w.step(), minRateWindow)) }

func promDuration(d time.Duration) string {
	return strconv.FormatInt(max(1, int64(d/time.Millisecond)), 10) + "ms"
}

func (s *Service) parseWindow(r *http.Request) (window, error) {
	v := r.URL.Query()
	w := window{end: s.now()}
	var err error
	if e := v.Get("end"); e != "" {
		if w.end, err = apitime.Parse(e); err != nil {
			return w, fmt.Errorf("invalid end: %w", err)
		}
	}
	w.start = w.end.Add(-defaultRange)
	if st := v.Get("start"); st != "" {
		if w.start, err = apitime.Parse(st); err != nil {
			return w, fmt.Errorf("invalid start: %w", err)
		}
	}
	if !w.start.Before(w.end) {
		return w, errors.New("start must be before end")
	}
	if w.end.Sub(w.start) > 32*24*time.Hour {
		return w, errors.New("the range is longer than 32 days; narrow it")
	}
	return w, nil
}

// instant evaluates q at t and returns its vector.
func (s *Service) instant(ctx context.Context, q string, t time.Time) (promql.Vector, error) {
	qry, err := s.engine.NewInstantQuery(ctx, s.queryable, nil, q, t)
	if err != nil {
		return nil, fmt.Errorf("red: %s: %w", q, err)
	}
	defer qry.Close()
	res := qry.Exec(ctx)
	if res.Err != nil {
		return nil, fmt.Errorf("red: %s: %w", q, res.Err)
	}
	v, err := res.Vector()
	if err != nil {
		return nil, fmt.Errorf("red: %s: %w", q, err)
	}
	return v, nil
}

// ranged evaluates q over the window at its sparkline step.
func (s *Service) ranged(ctx context.Context, q string, w window) (promql.Matrix, error) {
	qry, err := s.engine.NewRangeQuery(ctx, s.queryable, nil, q, w.start, w.end, w.step())
	if err != nil {
		return nil, fmt.Errorf("red: %s: %w", q, err)
	}
	defer qry.Close()
	res := qry.Exec(ctx)
	if res.Err != nil {
		return nil, fmt.Errorf("red: %s: %w", q, res.Err)
	}
	m, err := res.Matrix()
	if err != nil {
		return nil, fmt.Errorf("red: %s: %w", q, err)
	}
	return m, nil
}

// byKey indexes a vector by the values of the given labels.
func byKey(v promql.Vector, keys ...string) map[string]float64 {
	out := make(map[string]float64, len(v))
	for _, s := range v {
		out[key(s.Metric, keys...)] = s.F
	}
	return out
}

func key(ls labels.Labels, keys ...string) string {
	k := ""
	for i, name := range keys {
		if i > 0 {
			k += "\x00"
		}
		k += ls.Get(name)
	}
	return k
}

// nullable renders NaN and ±Inf (no data, empty histogram) as JSON null.
type nullable float64

func (n nullable) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, f, 'g', -1, 64), nil
}

func optional(m map[string]float64, k string) nullable {
	if v, ok := m[k]; ok {
		return nullable(v)
	}
	return nullable(math.NaN())
}

// Dependencies implements jaegerapi.DependencyReader from the service
// graph series: the calls between each pair of services in the window.
func (s *Service) Dependencies(ctx context.Context, end time.Time, lookback time.Duration) ([]jaegerapi.Dependency, error) {
	v, err := s.instant(ctx, fmt.Sprintf(`sum by (client, server) (increase(%s[%s]))`, GraphRequests, promDuration(lookback)), end)
	if err != nil {
		return nil, err
	}
	out := make([]jaegerapi.Dependency, 0, len(v))
	for _, smp := range v {
		out = append(out, jaegerapi.Dependency{
			Parent: smp.Metric.Get("client"), Child: smp.Metric.Get("server"),
			CallCount: uint64(math.Round(max(0, smp.F))),
		})
	}
	sortDeps(out)
	return out, nil
}
