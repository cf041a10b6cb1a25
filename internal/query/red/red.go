// Package red serves rate, errors and duration (RED) per service and
// operation, and the service map. A service that sends only traces gets the
// same charts as one with its own metrics.
//
// RED per service and operation is computed from the stored spans at query
// time (storage.REDReader); the service map's edges and Jaeger's
// dependencies come from the service graph series the recorder writes into
// the TSDB, since pairing client and server spans needs both halves, which
// the recorder sees as they arrive. Why the store and not PromQL over the
// recorded span series: measured on 10 million spans, the store answers the
// overview of 50 services over a day in tens of milliseconds where PromQL
// took seconds (docs/performance.md, "RED from spans").
package red

import (
	"cmp"
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
	"github.com/vigil-observability/vigil/internal/query/httpapi"
	"github.com/vigil-observability/vigil/internal/query/querylimit"
	vstorage "github.com/vigil-observability/vigil/internal/storage"
)

// Service graph series, as the OpenTelemetry Collector's servicegraph
// connector (and vigil's recorder) names them.
const (
	GraphRequests = "traces_service_graph_request_total"
	GraphFailed   = "traces_service_graph_request_failed_total"
)

const (
	sparklinePoints = 30
	defaultRange    = time.Hour
)

// Options configures the handler.
type Options struct {
	// Spans computes RED per service and operation from stored spans.
	// Required.
	Spans vstorage.REDReader
	// Queryable is the metric store with the service graph series, for
	// the service map's edges and Jaeger's dependencies. Required.
	Queryable storage.Queryable
	// Logger receives query failures; nil discards them.
	Logger *slog.Logger
	// Now is the clock for default ranges; nil means time.Now.
	Now func() time.Time
	// Engine evaluates the service graph queries: the process's one
	// engine, whose limits and slots bound them; each request runs under
	// one of its slots. Required.
	Engine *querylimit.Engine
	// Timeout bounds each PromQL evaluation (30s if 0), within the
	// engine's own: the service map is an overview, not worth holding a
	// slot for the engine's full query timeout.
	Timeout time.Duration
}

// Routes lists the path patterns Handler serves.
var Routes = []string{"/api/red/services", "/api/red/operations", "/api/servicemap"}

// Service computes RED figures and the service graph.
type Service struct {
	spans     vstorage.REDReader
	engine    promql.QueryEngine
	queryable storage.Queryable
	logger    *slog.Logger
	now       func() time.Time
	slots     *querylimit.Slots
	timeout   time.Duration
}

// New returns a Service. It panics if Options.Spans, Queryable or Engine
// is nil, a wiring mistake.
func New(opts Options) (*Service, error) {
	if opts.Queryable == nil || opts.Spans == nil || opts.Engine == nil {
		panic("red: Options.Spans, Queryable and Engine are required")
	}
	s := &Service{
		spans: opts.Spans, queryable: opts.Queryable, logger: opts.Logger, now: opts.Now,
		engine: opts.Engine, slots: opts.Engine.Slots(), timeout: cmp.Or(opts.Timeout, 30*time.Second),
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// Handler serves Routes.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/red/services", s.services)
	mux.HandleFunc("GET /api/red/operations", s.operations)
	mux.HandleFunc("GET /api/servicemap", s.serviceMap)
	httpapi.MethodNotAllowed(mux, Routes, writeError)
	if s.slots == nil {
		return mux
	}
	return s.slots.Handler(mux, writeError)
}

// window is a request's time range.
type window struct {
	start, end time.Time
}

func (w window) rangeSel() string { return promDuration(w.end.Sub(w.start)) }

// step is the sparkline resolution.
func (w window) step() time.Duration {
	return max(time.Second, (w.end.Sub(w.start) / sparklinePoints).Truncate(time.Second))
}

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
	// The engine reports this deadline as its own timeout, as it did when
	// RED had an engine of its own with this timeout.
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
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

// Dependencies returns, from the service graph series, the calls between
// each pair of services in the window (the Jaeger API's dependencies).
func (s *Service) Dependencies(ctx context.Context, end time.Time, lookback time.Duration) ([]vstorage.Dependency, error) {
	v, err := s.instant(ctx, fmt.Sprintf(`sum by (client, server) (increase(%s[%s]))`, GraphRequests, promDuration(lookback)), end)
	if err != nil {
		return nil, err
	}
	out := make([]vstorage.Dependency, 0, len(v))
	for _, smp := range v {
		out = append(out, vstorage.Dependency{
			Parent: smp.Metric.Get("client"), Child: smp.Metric.Get("server"),
			CallCount: uint64(math.Round(max(0, smp.F))),
		})
	}
	sortDeps(out)
	return out, nil
}
