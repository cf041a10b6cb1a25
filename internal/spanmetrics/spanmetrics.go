// Package spanmetrics derives metrics from the spans and log records vigil
// stores and appends them to the metrics store, so that a service that only
// sends traces still gets request rate, error and latency charts, a service
// graph and alert rules over them.
//
// Names and labels follow the OpenTelemetry Collector's spanmetrics and
// servicegraph connectors, which Grafana and Jaeger already understand:
//
//   - traces_span_metrics_calls_total{service_name,span_name,span_kind,status_code}
//   - traces_span_metrics_duration_seconds_bucket{...,le}, _sum and _count
//   - traces_service_graph_request_total{client,server,connection_type}
//   - traces_service_graph_request_failed_total{client,server,connection_type}
//   - traces_service_graph_request_server_seconds and
//     traces_service_graph_request_client_seconds histograms
//
// and, for log records, vigil_log_records_total{service_name,severity}.
//
// Every value is cumulative since the Recorder was created: counters restart
// from zero when vigil restarts, which rate() and increase() handle. A label
// set's first sample is preceded by a zero at the time of the flush before it
// was first seen, so that increase() also counts the requests of a series'
// first interval.
package spanmetrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// Defaults used for zero Options fields.
const (
	DefaultInterval        = 15 * time.Second
	DefaultEdgeTTL         = 10 * time.Second
	DefaultMaxPendingEdges = 100_000
	// DefaultMaxSeries bounds label sets per family. A span label set is 20
	// TSDB series (a counter and a 17-bucket histogram), so the default
	// costs at most 100,000 series for span metrics.
	DefaultMaxSeries = 5_000
)

// Options configures a Recorder. Zero fields mean the defaults.
type Options struct {
	// Appendable receives the series; *tsdb.DB satisfies it. Required.
	Appendable storage.AppendableV2
	// Interval is how often Run appends the current values.
	Interval time.Duration
	// EdgeTTL is how long one half of a service graph edge (a client span
	// or its server child) waits for the other before it is counted in
	// vigil_service_graph_unpaired_spans_total and forgotten.
	EdgeTTL time.Duration
	// MaxPendingEdges bounds the halves waiting for their other half; when
	// full the oldest is dropped and counted in
	// vigil_service_graph_evicted_spans_total.
	MaxPendingEdges int
	// MaxSeries bounds the label sets of each family (span metrics, service
	// graph edges, log counts). Beyond it a span counts under
	// span_name="__overflow__", an edge under server="__overflow__" and a
	// log record under service_name="__overflow__", counted in
	// vigil_spanmetrics_overflow_total{family}. Overflow label sets have a
	// budget of their own of the same size, after which every label but the
	// kind, status, connection type or severity becomes "__overflow__".
	MaxSeries int
	// ExternalLabels are added to every series. Where several vigil
	// processes share one metric store, each counts only the spans it
	// ingests, so each needs its own label (the server sets vigil_node);
	// sum() over it gives the whole.
	ExternalLabels labels.Labels
	// Registerer receives vigil's own metrics about the recorder; nil
	// registers nothing.
	Registerer prometheus.Registerer
	// Logger receives flush failures; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now. Tests set it.
	Now func() time.Time
}

// Recorder aggregates spans and log records into series and appends them
// periodically. RecordSpans, RecordLogs and Flush are safe for concurrent
// use.
type Recorder struct {
	app            storage.AppendableV2
	externalLabels labels.Labels
	interval       time.Duration
	edgeTTL        int64 // nanoseconds
	maxSeries      int
	logger         *slog.Logger
	now            func() time.Time

	// mu guards the span and edge families' values and the pending halves.
	mu      sync.Mutex
	spans   family[spanKey, hist]
	edges   family[edgeKey, edgeValues]
	pending pendingStore
	// services interns service names, so that pending halves keep no
	// request memory.
	services map[string]string
	// versions are the traces_service_build_info series.
	versions map[versionKey]*versionSeries
	// unpaired caches vigil_service_graph_unpaired_spans_total children.
	unpaired map[unpairedKey]prometheus.Counter

	// logMu guards the log family's values.
	logMu sync.Mutex
	logs  family[logKey, uint64]

	// startMs is what a series created now was worth zero at: the time of
	// the last snapshot, or the Recorder's creation. Guarded by mu and
	// logMu (both held to write it).
	startMs int64

	// flushMu serializes flushes and guards what only they touch: the
	// series' flush states and the snapshot buffers below.
	flushMu     sync.Mutex
	lastFlushMs int64
	spanVals    []hist
	edgeVals    []edgeValues
	logVals     []uint64

	unpairedVec   *prometheus.CounterVec
	evicted       [2]prometheus.Counter // by side
	flushFailures prometheus.Counter
}

// New returns a Recorder. Start its flush loop with Run. It panics if
// opts.Appendable is nil, a wiring mistake that no configuration can fix.
func New(opts Options) (*Recorder, error) {
	if opts.Appendable == nil {
		panic("spanmetrics: Options.Appendable is required")
	}
	if opts.Interval < 0 || opts.EdgeTTL < 0 || opts.MaxPendingEdges < 0 || opts.MaxSeries < 0 {
		return nil, errors.New("spanmetrics: Options durations and sizes must not be negative")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &Recorder{
		externalLabels: opts.ExternalLabels,
		app:            opts.Appendable,
		interval:       cmpOr(opts.Interval, DefaultInterval),
		edgeTTL:        int64(cmpOr(opts.EdgeTTL, DefaultEdgeTTL)),
		maxSeries:      cmpOr(opts.MaxSeries, DefaultMaxSeries),
		logger:         opts.Logger,
		now:            opts.Now,
		services:       map[string]string{},
		versions:       map[versionKey]*versionSeries{},
		unpaired:       map[unpairedKey]prometheus.Counter{},
		unpairedVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_service_graph_unpaired_spans_total",
			Help: "Client (or producer) spans whose server (or consumer) child, and server spans whose client parent, did not arrive within the edge TTL; often a sign of broken context propagation or of calls to uninstrumented peers.",
		}, []string{"service", "side"}),
		flushFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_spanmetrics_flush_failures_total",
			Help: "Flushes of span and log metrics to the metrics store that failed or had samples refused.",
		}),
	}
	overflow := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_spanmetrics_overflow_total",
		Help: "Spans, service graph requests and log records counted under an __overflow__ label set because their family reached its series limit.",
	}, []string{"family"})
	evicted := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_service_graph_evicted_spans_total",
		Help: "Halves of service graph edges dropped unpaired because the store of pending halves was full.",
	}, []string{"side"})
	r.evicted = [2]prometheus.Counter{evicted.WithLabelValues(sideClient), evicted.WithLabelValues(sideServer)}
	r.spans.init(overflow.WithLabelValues("span_metrics"), validSpanKey, ownSpanKey, overflowSpanKeys)
	r.edges.init(overflow.WithLabelValues("service_graph"), validEdgeKey, ownEdgeKey, overflowEdgeKeys)
	r.logs.init(overflow.WithLabelValues("log_records"), validLogKey, ownLogKey, overflowLogKeys)
	r.pending.init(cmpOr(opts.MaxPendingEdges, DefaultMaxPendingEdges))
	r.startMs = r.now().UnixMilli()
	r.lastFlushMs = r.startMs

	if reg := opts.Registerer; reg != nil {
		for _, c := range []prometheus.Collector{r.unpairedVec, evicted, overflow, r.flushFailures} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("spanmetrics: registering metrics: %w", err)
			}
		}
	}
	return r, nil
}

// Run appends the current values every Interval until ctx ends, then once
// more so that nothing consumed before is lost; it returns that last
// flush's error. Failed flushes in between are logged and retried at the
// next tick with the then-current values. Stop feeding the Recorder before
// ctx ends, and close the metrics store only after Run returns.
func (r *Recorder) Run(ctx context.Context) error {
	tick := time.NewTicker(r.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return r.Flush(context.WithoutCancel(ctx))
		case <-tick.C:
			if err := r.Flush(ctx); err != nil && ctx.Err() == nil {
				r.logger.Warn("span metrics: flush failed; retrying at the next interval", "err", err)
			}
		}
	}
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
