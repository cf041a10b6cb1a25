package querylimit

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/prometheus/prometheus/util/features"
)

// ErrTooManySeries and ErrResponseTooLarge end a query that would hold more
// than its share of memory. They are execution errors: the Prometheus API
// answers them 422, as it does Prometheus's own sample limit.
var (
	ErrTooManySeries    = errors.New("query selects too many series")
	ErrResponseTooLarge = errors.New("query result too large")
)

// Options build an Engine.
type Options struct {
	// EngineOpts are the wrapped engine's options; Timeout, MaxSamples,
	// Parser and NoStepSubqueryIntervalFn are set from Limits and Plan.
	// The @ modifier and negative offsets are always on, as in every
	// Prometheus since v2.33; FeatureRegistry is a new one when nil, so
	// that the Prometheus API can report the engine's features.
	EngineOpts promql.EngineOpts
	// Limits bound each query; zero fields are taken from DefaultsFor(0).
	Limits Limits
	// Plan must describe EngineOpts: the parser and default subquery step
	// the engine is built with are taken from it.
	Plan Plan
	// Slots is shared by every query path of the process; nil runs queries
	// without a concurrency bound.
	Slots *Slots
}

// Engine is a promql.QueryEngine that refuses what Plan.Check refuses,
// runs each query under a slot of Slots, and ends queries that select more
// than Limits.MaxSeries series or whose answer would exceed
// Limits.MaxResponseBytes.
//
// A process builds one and hands it to every path that evaluates PromQL
// (the Prometheus API, rules, RED, the doctor): the engine's metrics are
// registered once, and what the API reports as its settings is what every
// path runs with. Safe for concurrent use.
type Engine struct {
	ng       *promql.Engine
	plan     Plan
	limits   Limits
	slots    *Slots
	lookback time.Duration
	features features.Collector
}

var _ promql.QueryEngine = (*Engine)(nil)

// NewEngine builds the engine and its wrapper. With EngineOpts.Reg set it
// registers the engine's metrics there, as Prometheus's engine does: it
// panics on a second engine with the same registry, so build one per
// process.
func NewEngine(opts Options) *Engine {
	eo := opts.EngineOpts
	if opts.Plan.Parser == nil {
		opts.Plan.Parser = parser.NewParser(parser.Options{ExperimentalDurationExpr: true})
	}
	if opts.Plan.DefaultStep == nil {
		opts.Plan.DefaultStep = func(int64) int64 { return time.Minute.Milliseconds() }
	}
	lim := opts.Limits.Fill(DefaultsFor(0))
	eo.Parser = opts.Plan.Parser
	eo.NoStepSubqueryIntervalFn = opts.Plan.DefaultStep
	eo.Timeout = lim.Timeout
	eo.MaxSamples = lim.MaxSamples
	eo.EnableAtModifier = true
	eo.EnableNegativeOffset = true
	if eo.LookbackDelta <= 0 {
		eo.LookbackDelta = DefaultLookbackDelta
	}
	if eo.FeatureRegistry == nil {
		eo.FeatureRegistry = features.NewRegistry()
	}
	return &Engine{
		ng: promql.NewEngine(eo), plan: opts.Plan, limits: lim, slots: opts.Slots,
		lookback: eo.LookbackDelta, features: eo.FeatureRegistry,
	}
}

// DefaultLookbackDelta is how far back an instant selector looks for a
// sample, Prometheus's --query.lookback-delta default.
const DefaultLookbackDelta = 5 * time.Minute

// Limits are the bounds each query runs under, defaults filled in.
func (e *Engine) Limits() Limits { return e.limits }

// Slots is the concurrency limiter queries run under; nil means none.
func (e *Engine) Slots() *Slots { return e.slots }

// LookbackDelta is how far back an instant selector looks.
func (e *Engine) LookbackDelta() time.Duration { return e.lookback }

// Parser reads queries the way the engine does.
func (e *Engine) Parser() parser.Parser { return e.plan.Parser }

// Features is the registry the engine reported its PromQL features to;
// the Prometheus API adds its own and serves them.
func (e *Engine) Features() features.Collector { return e.features }

// NewInstantQuery implements promql.QueryEngine.
func (e *Engine) NewInstantQuery(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, ts time.Time) (promql.Query, error) {
	if err := e.plan.Check(qs, ts, ts, 0); err != nil {
		return nil, err
	}
	qry, err := e.ng.NewInstantQuery(ctx, limitQueryable(q), opts, qs, ts)
	if err != nil {
		return nil, err
	}
	return &query{Query: qry, e: e}, nil
}

// NewRangeQuery implements promql.QueryEngine.
func (e *Engine) NewRangeQuery(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, start, end time.Time, interval time.Duration) (promql.Query, error) {
	if interval <= 0 {
		return nil, fmt.Errorf("%w: range query step %s must be positive", ErrRefused, interval)
	}
	if err := e.plan.Check(qs, start, end, interval); err != nil {
		return nil, err
	}
	qry, err := e.ng.NewRangeQuery(ctx, limitQueryable(q), opts, qs, start, end, interval)
	if err != nil {
		return nil, err
	}
	return &query{Query: qry, e: e}, nil
}

// query holds its slot from Exec until Close: the result it returns lives
// until then.
type query struct {
	promql.Query
	e       *Engine
	release func()
}

func (q *query) Exec(ctx context.Context) *promql.Result {
	ctx, release, err := q.e.slots.Acquire(ctx)
	if err != nil {
		if errors.Is(err, ErrBusy) {
			// The engine's own timeout error, so that the Prometheus API
			// answers it as it answers an overloaded Prometheus: 503.
			err = fmt.Errorf("%w: %w", promql.ErrQueryTimeout("waiting for a query slot"), err)
		}
		return &promql.Result{Err: err}
	}
	if q.release != nil {
		q.release()
	}
	q.release = release
	ctx = WithSeriesBudget(ctx, q.e.limits.MaxSeries)
	res := q.Query.Exec(ctx)
	if res.Err == nil && q.e.limits.MaxResponseBytes > 0 {
		if n := EstimateBytes(res.Value); n > q.e.limits.MaxResponseBytes {
			res = &promql.Result{Err: fmt.Errorf("%w: about %d MiB, more than the %d MiB allowed (query.max_response_bytes): select fewer series or use a coarser step",
				ErrResponseTooLarge, n>>20, q.e.limits.MaxResponseBytes>>20), Warnings: res.Warnings}
		}
	}
	return res
}

func (q *query) Close() {
	q.Query.Close()
	if q.release != nil {
		q.release()
		q.release = nil
	}
}

// EstimateBytes is about what a result takes encoded as the Prometheus
// API's JSON: labels, and ~30 bytes a float sample ("[1700000000.123,"1.5"]").
func EstimateBytes(v parser.Value) int64 {
	seriesBytes := func(ls labels.Labels) int64 {
		n := int64(32)
		ls.Range(func(l labels.Label) { n += int64(len(l.Name)+len(l.Value)) + 6 })
		return n
	}
	var n int64
	switch v := v.(type) {
	case promql.Matrix:
		for _, s := range v {
			n += seriesBytes(s.Metric) + int64(len(s.Floats))*32 + int64(len(s.Histograms))*512
		}
	case promql.Vector:
		for _, s := range v {
			n += seriesBytes(s.Metric) + 64
			if s.H != nil {
				n += 512
			}
		}
	}
	return n
}

// budget counts the series one query or request selects.
type budget struct {
	max int64
	n   atomic.Int64
}

type budgetKey struct{}

// WithSeriesBudget returns a context under which queriers wrapped by
// LimitSeries select at most max series in all (0: no bound). A context
// that already carries a budget keeps it.
func WithSeriesBudget(ctx context.Context, max int) context.Context {
	if max <= 0 || ctx.Value(budgetKey{}) != nil {
		return ctx
	}
	return context.WithValue(ctx, budgetKey{}, &budget{max: int64(max)})
}

// LimitSeries wraps q so that its selects count against the series budget
// of their context (see WithSeriesBudget).
func LimitSeries(q storage.SampleAndChunkQueryable) storage.SampleAndChunkQueryable {
	return limitedQueryable{q}
}

type limitedQueryable struct {
	storage.SampleAndChunkQueryable
}

func (l limitedQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	q, err := l.SampleAndChunkQueryable.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return limitedQuerier{q}, nil
}

func (l limitedQueryable) ChunkQuerier(mint, maxt int64) (storage.ChunkQuerier, error) {
	q, err := l.SampleAndChunkQueryable.ChunkQuerier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return limitedChunkQuerier{q}, nil
}

// limitQueryable makes a queryable's selects count against their
// context's series budget, once.
func limitQueryable(q storage.Queryable) storage.Queryable {
	switch q.(type) {
	case limitedQueryable, sampleLimitedQueryable:
		return q
	}
	return sampleLimitedQueryable{q}
}

type sampleLimitedQueryable struct{ storage.Queryable }

func (l sampleLimitedQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	q, err := l.Queryable.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return limitedQuerier{q}, nil
}

type limitedQuerier struct{ storage.Querier }

func (q limitedQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	ss := q.Querier.Select(ctx, sortSeries, hints, ms...)
	b, _ := ctx.Value(budgetKey{}).(*budget)
	if b == nil {
		return ss
	}
	return &limitedSeriesSet{SeriesSet: ss, b: b}
}

type limitedChunkQuerier struct{ storage.ChunkQuerier }

func (q limitedChunkQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.ChunkSeriesSet {
	ss := q.ChunkQuerier.Select(ctx, sortSeries, hints, ms...)
	b, _ := ctx.Value(budgetKey{}).(*budget)
	if b == nil {
		return ss
	}
	return &limitedChunkSeriesSet{ChunkSeriesSet: ss, b: b}
}

func (b *budget) take() error {
	if b.n.Add(1) > b.max {
		return fmt.Errorf("%w: more than the %d allowed (query.max_series): narrow the selectors", ErrTooManySeries, b.max)
	}
	return nil
}

type limitedSeriesSet struct {
	storage.SeriesSet
	b   *budget
	err error
}

func (s *limitedSeriesSet) Next() bool {
	if s.err != nil || !s.SeriesSet.Next() {
		return false
	}
	s.err = s.b.take()
	return s.err == nil
}

func (s *limitedSeriesSet) Err() error {
	if s.err != nil {
		return s.err
	}
	return s.SeriesSet.Err()
}

func (s *limitedSeriesSet) Warnings() annotations.Annotations { return s.SeriesSet.Warnings() }

type limitedChunkSeriesSet struct {
	storage.ChunkSeriesSet
	b   *budget
	err error
}

func (s *limitedChunkSeriesSet) Next() bool {
	if s.err != nil || !s.ChunkSeriesSet.Next() {
		return false
	}
	s.err = s.b.take()
	return s.err == nil
}

func (s *limitedChunkSeriesSet) Err() error {
	if s.err != nil {
		return s.err
	}
	return s.ChunkSeriesSet.Err()
}
