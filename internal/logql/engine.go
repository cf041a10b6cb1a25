package logql

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
)

// Errors the engine returns, wrapped with the details; the HTTP side maps
// them to status codes with errors.Is.
var (
	// ErrBadQuery is a query the engine cannot run as asked: a bad step,
	// range or template. ErrParse wraps parse errors instead.
	ErrBadQuery = errors.New("logql: bad query")
	// ErrUnsupported is a construct of LogQL the engine does not evaluate.
	ErrUnsupported = errors.New("logql: unsupported")
	// ErrTooManyEntries is a query that would scan more entries than
	// EngineOptions.MaxEntries.
	ErrTooManyEntries = errors.New("logql: query scans too many entries")
	// ErrTooManyStreams is a query whose selectors match more streams
	// than EngineOptions.MaxStreams.
	ErrTooManyStreams = errors.New("logql: query reads too many streams")
	// ErrTooManySeries is a metric query with more series than
	// EngineOptions.MaxSeries.
	ErrTooManySeries = errors.New("logql: query returns too many series")
	// ErrTooManySamples is a metric query that would hold more samples
	// (series times steps) at once than EngineOptions.MaxSamples.
	ErrTooManySamples = errors.New("logql: query holds too many samples")
	// ErrTooManyPoints is a range query with more steps than
	// EngineOptions.MaxPoints.
	ErrTooManyPoints = errors.New("logql: query has too many points per series")
	// ErrPipeline is a metric query whose samples carry __error__: Loki
	// refuses to count lines its pipeline failed on unless the query says
	// what to do with them (| __error__="" or | drop __error__).
	ErrPipeline = errors.New("logql: pipeline error")
)

// EngineOptions bound what a query may cost. Zero fields take the
// defaults below.
type EngineOptions struct {
	// MaxEntries is how many entries a query may read from its source
	// before it fails with ErrTooManyEntries; default 5,000,000.
	MaxEntries int64
	// MaxStreams is how many streams a selector may match; default 10,000.
	MaxStreams int
	// MaxSeries is how many series a metric query may return; default
	// 500, Loki's max_query_series.
	MaxSeries int
	// MaxSamples bounds the samples (series times steps) a metric query
	// holds at once, before aggregations reduce them: the inner series of
	// sum by (level) (count_over_time({...} | json [5m])) are as many as
	// the distinct label sets the parser finds. Default 10,000,000, about
	// 90 MB.
	MaxSamples int
	// MaxPoints is how many steps a range query may have; default 11,000,
	// Loki's and Prometheus's limit.
	MaxPoints int
	// Lookback is how far back an instant log query (Start == End) reads;
	// default 1h.
	Lookback time.Duration
	// Timeout bounds a query's run; default 2m.
	Timeout time.Duration
}

func (o *EngineOptions) setDefaults() {
	if o.MaxEntries <= 0 {
		o.MaxEntries = 5_000_000
	}
	if o.MaxStreams <= 0 {
		o.MaxStreams = 10_000
	}
	if o.MaxSeries <= 0 {
		o.MaxSeries = 500
	}
	if o.MaxSamples <= 0 {
		o.MaxSamples = 10_000_000
	}
	if o.MaxPoints <= 0 {
		o.MaxPoints = 11_000
	}
	if o.Lookback <= 0 {
		o.Lookback = time.Hour
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
}

// Engine evaluates LogQL queries over a Source. It holds no state between
// queries and is safe for concurrent use.
type Engine struct {
	opts EngineOptions
}

// NewEngine returns an engine with the options' defaults filled in.
func NewEngine(opts EngineOptions) *Engine {
	opts.setDefaults()
	return &Engine{opts: opts}
}

// Direction is the order of a log query's entries.
type Direction int

// The directions; Backward, newest first, is Loki's default.
const (
	Backward Direction = iota
	Forward
)

// Params is one query to run.
type Params struct {
	// Query is parsed when Expr is nil.
	Query string
	Expr  Expr
	// Start and End bound a range query; Start == End makes an instant
	// query. Log queries read [Start, End), as Loki does; an instant log
	// query reads the Lookback before its time, and the time itself.
	Start, End time.Time
	// Step is a range metric query's resolution.
	Step time.Duration
	// Limit caps the entries of a log query's answer; 0 means no cap
	// (Loki's API defaults it to 100, which is the caller's to apply).
	Limit int
	// Direction orders a log query's entries.
	Direction Direction
}

// ResultType names the kind of Result, as Loki's resultType does.
type ResultType string

// The result types.
const (
	ResultStreams ResultType = "streams"
	ResultMatrix  ResultType = "matrix"
	ResultVector  ResultType = "vector"
	ResultScalar  ResultType = "scalar"
)

// Result is a query's answer: one of Streams, Matrix, Vector or Scalar,
// as Type says.
type Result struct {
	Type    ResultType
	Streams []LogStream
	Matrix  promql.Matrix
	Vector  promql.Vector
	Scalar  promql.Scalar
	Stats   Stats
}

// LogStream is a log query's entries that share their labels: the stream
// labels, structured metadata and parsed labels after the pipeline, as
// Loki's default (not categorized) answer gives them.
type LogStream struct {
	Labels  labels.Labels
	Entries []LogEntry
}

// LogEntry is one line of a log query's answer.
type LogEntry struct {
	Timestamp int64 // Unix nanoseconds
	Line      string
}

// Stats is what a query cost, for Loki's stats.summary.
type Stats struct {
	// EntriesScanned and BytesScanned (of lines) count what the source
	// yielded, before the pipeline.
	EntriesScanned, BytesScanned int64
	// EntriesReturned counts the entries of a log query's answer.
	EntriesReturned int64
	ExecTime        time.Duration
}

// Query runs a query. Errors wrap ErrParse, ErrBadQuery, ErrUnsupported,
// one of the ErrTooMany limits, ErrPipeline, a context error or the
// source's.
func (e *Engine) Query(ctx context.Context, src Source, p Params) (Result, error) {
	began := time.Now()
	expr := p.Expr
	if expr == nil {
		var err error
		if expr, err = Parse(p.Query); err != nil {
			return Result{}, err
		}
	}
	if p.End.Before(p.Start) {
		return Result{}, fmt.Errorf("%w: end %s is before start %s", ErrBadQuery, p.End.Format(time.RFC3339Nano), p.Start.Format(time.RFC3339Nano))
	}
	if p.Limit < 0 {
		return Result{}, fmt.Errorf("%w: negative limit %d", ErrBadQuery, p.Limit)
	}
	ctx, cancel := context.WithTimeout(ctx, e.opts.Timeout)
	defer cancel()
	ev := &evaluator{opts: &e.opts, src: src, ctx: ctx}
	var (
		res Result
		err error
	)
	switch x := expr.(type) {
	case *LogQuery:
		res, err = ev.logQuery(x, p)
	case MetricExpr:
		res, err = ev.metricQuery(x, p)
	default:
		err = fmt.Errorf("%w: query %s", ErrUnsupported, expr)
	}
	// The stats go with an error too: what a failed query read.
	res.Stats = ev.stats
	res.Stats.ExecTime = time.Since(began)
	return res, err
}

// evaluator is the state of one query's run.
type evaluator struct {
	opts  *EngineOptions
	src   Source
	ctx   context.Context
	stats Stats
}

// scan reads the entries of a log query's streams in [start, end) through
// its pipeline and calls emit for each kept one, with the labels and line
// as the pipeline left them, until emit returns false.
func (ev *evaluator) scan(q *LogQuery, start, end time.Time, forward bool, limit int, emit func(ts int64, line string, lbs *entryLabels) bool) error {
	pl, err := compilePipeline(q)
	if err != nil {
		return err
	}
	streams, err := ev.src.Streams(ev.ctx, q.Matchers, start, end)
	if err != nil {
		return fmt.Errorf("logql: reading the streams of %s: %w", q.Selector(), err)
	}
	if len(streams) > ev.opts.MaxStreams {
		return fmt.Errorf("%w: %s matches %d streams, more than %d; narrow the selector", ErrTooManyStreams, q.Selector(), len(streams), ev.opts.MaxStreams)
	}
	if len(streams) == 0 {
		return nil
	}
	eq := EntryQuery{Streams: streams, Start: start, End: end, Contains: pl.contains, Forward: forward}
	if !pl.filters {
		// Every entry read is kept, so the source need not read more.
		eq.Limit = limit
	} else {
		eq.Want = limit
	}
	var lbs entryLabels
	for ent, err := range ev.src.Entries(ev.ctx, eq) {
		if err != nil {
			return fmt.Errorf("logql: reading the entries of %s: %w", q.Selector(), err)
		}
		ev.stats.EntriesScanned++
		ev.stats.BytesScanned += int64(len(ent.Line))
		if ev.stats.EntriesScanned > ev.opts.MaxEntries {
			return fmt.Errorf("%w: more than %d; narrow the selector, add line filters or shorten the range", ErrTooManyEntries, ev.opts.MaxEntries)
		}
		if ev.stats.EntriesScanned%1024 == 0 {
			if err := ev.ctx.Err(); err != nil {
				return fmt.Errorf("logql: query stopped: %w", err)
			}
		}
		if ent.Stream < 0 || ent.Stream >= len(streams) {
			return fmt.Errorf("logql: source yielded an entry of stream %d out of %d", ent.Stream, len(streams))
		}
		lbs.reset(streams[ent.Stream].Labels)
		ent.Metadata.Range(func(l labels.Label) { lbs.add(l.Name, l.Value) })
		line, ok := pl.process(ent.Timestamp, ent.Line, &lbs)
		if !ok {
			continue
		}
		if !emit(ent.Timestamp, line, &lbs) {
			return nil
		}
	}
	if err := ev.ctx.Err(); err != nil {
		// A source may end its sequence early when the context ends.
		return fmt.Errorf("logql: query stopped: %w", err)
	}
	return nil
}

func (ev *evaluator) logQuery(q *LogQuery, p Params) (Result, error) {
	start, end := p.Start, p.End
	if start.Equal(end) {
		// An instant log query looks back from its time, which it
		// includes.
		start, end = end.Add(-ev.opts.Lookback), end.Add(1)
	}
	var (
		out   []LogStream
		index = map[string]int{}
		key   []byte
		order []int
		n     int
	)
	err := ev.scan(q, start, end, p.Direction == Forward, p.Limit, func(ts int64, line string, lbs *entryLabels) bool {
		key, order = lbs.key(key[:0], order)
		i, ok := index[string(key)]
		if !ok {
			i = len(out)
			index[string(key)] = i
			out = append(out, LogStream{Labels: lbs.labels()})
		}
		out[i].Entries = append(out[i].Entries, LogEntry{Timestamp: ts, Line: line})
		n++
		return p.Limit == 0 || n < p.Limit
	})
	ev.stats.EntriesReturned = int64(n)
	if err != nil {
		return Result{}, err
	}
	slices.SortFunc(out, func(a, b LogStream) int { return labels.Compare(a.Labels, b.Labels) })
	return Result{Type: ResultStreams, Streams: out}, nil
}

// steps returns the evaluation times of a metric query in milliseconds.
func (ev *evaluator) steps(p Params) ([]int64, error) {
	if p.Start.Equal(p.End) {
		return []int64{p.End.UnixMilli()}, nil
	}
	if p.Step <= 0 {
		return nil, fmt.Errorf("%w: a range query needs a positive step", ErrBadQuery)
	}
	if p.Step < time.Millisecond {
		return nil, fmt.Errorf("%w: step %s is below a millisecond", ErrBadQuery, p.Step)
	}
	n := p.End.Sub(p.Start)/p.Step + 1
	if n > time.Duration(ev.opts.MaxPoints) {
		return nil, fmt.Errorf("%w: %d steps of %s, more than %d; increase the step", ErrTooManyPoints, n, p.Step, ev.opts.MaxPoints)
	}
	ts := make([]int64, 0, n)
	for t := p.Start; !t.After(p.End); t = t.Add(p.Step) {
		ts = append(ts, t.UnixMilli())
	}
	return ts, nil
}

func (ev *evaluator) metricQuery(x MetricExpr, p Params) (Result, error) {
	steps, err := ev.steps(p)
	if err != nil {
		return Result{}, err
	}
	v, err := ev.eval(x, steps)
	if err != nil {
		return Result{}, err
	}
	instant := p.Start.Equal(p.End)
	if v.isScalar {
		if instant {
			return Result{Type: ResultScalar, Scalar: promql.Scalar{T: steps[0], V: v.scalar}}, nil
		}
		s := newSeries(labels.EmptyLabels(), len(steps))
		for i := range steps {
			s.vals[i], s.ok[i] = v.scalar, true
		}
		v = value{series: []series{s}}
	}
	if len(v.series) > ev.opts.MaxSeries {
		return Result{}, fmt.Errorf("%w: %d, more than %d; aggregate with sum by (...) or narrow the selector", ErrTooManySeries, len(v.series), ev.opts.MaxSeries)
	}
	slices.SortFunc(v.series, func(a, b series) int { return labels.Compare(a.lbls, b.lbls) })
	if instant {
		vec := promql.Vector{}
		for _, s := range v.series {
			if s.ok[0] {
				vec = append(vec, promql.Sample{T: steps[0], F: s.vals[0], Metric: s.lbls})
			}
		}
		return Result{Type: ResultVector, Vector: vec}, nil
	}
	m := promql.Matrix{}
	for _, s := range v.series {
		var pts []promql.FPoint
		for i, t := range steps {
			if s.ok[i] {
				pts = append(pts, promql.FPoint{T: t, F: s.vals[i]})
			}
		}
		if len(pts) > 0 {
			m = append(m, promql.Series{Metric: s.lbls, Floats: pts})
		}
	}
	return Result{Type: ResultMatrix, Matrix: m}, nil
}
