package spanmetrics

import (
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage/storagetest"
)

// t0 is when every test's clock starts: a whole second, so that flush times
// are exact.
var t0 = time.Now().Truncate(time.Hour)

// clock is a settable Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// env is a Recorder on a fresh TSDB with a fake clock and its own registry.
type env struct {
	t     *testing.T
	db    *tsdb.DB
	clock *clock
	reg   *prometheus.Registry
	rec   *Recorder
}

func newEnv(t *testing.T, opts Options) *env {
	t.Helper()
	return newEnvWith(t, opts, nil)
}

// newEnvWith is newEnv with wrap, if not nil, between the Recorder and the
// TSDB.
func newEnvWith(t *testing.T, opts Options, wrap func(storage.AppendableV2) storage.AppendableV2) *env {
	t.Helper()
	e := &env{t: t, db: storagetest.OpenTSDB(t, storagetest.TSDBOptions{}), clock: newClock(), reg: prometheus.NewRegistry()}
	opts.Appendable = e.db
	if wrap != nil {
		opts.Appendable = wrap(e.db)
	}
	opts.Now = e.clock.Now
	opts.Registerer = e.reg
	rec, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.rec = rec
	return e
}

// flushAt advances the clock by d and flushes.
func (e *env) flushAt(d time.Duration) time.Time {
	e.t.Helper()
	at := e.clock.Advance(d)
	if err := e.rec.Flush(e.t.Context()); err != nil {
		e.t.Fatalf("Flush: %v", err)
	}
	return at
}

var engine = promql.NewEngine(promql.EngineOpts{MaxSamples: 1_000_000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})

// query evaluates q at at and returns each result's value keyed by its
// labels (metric name included when the result keeps it).
func (e *env) query(q string, at time.Time) map[string]float64 {
	e.t.Helper()
	qry, err := engine.NewInstantQuery(e.t.Context(), e.db, nil, q, at)
	if err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
	defer qry.Close()
	res := qry.Exec(e.t.Context())
	if res.Err != nil {
		e.t.Fatalf("%s: %v", q, res.Err)
	}
	out := map[string]float64{}
	switch v := res.Value.(type) {
	case promql.Vector:
		for _, s := range v {
			out[s.Metric.String()] = s.F
		}
	case promql.Scalar:
		out[""] = v.V
	default:
		e.t.Fatalf("%s: unexpected result type %T", q, res.Value)
	}
	return out
}

// value evaluates q, which must give exactly one sample, at at.
func (e *env) value(q string, at time.Time) float64 {
	e.t.Helper()
	got := e.query(q, at)
	if len(got) != 1 {
		e.t.Fatalf("%s = %v, want one sample", q, got)
	}
	for _, v := range got {
		return v
	}
	return math.NaN()
}

// wantValues checks that q gives exactly want (keys are label sets).
func (e *env) wantValues(q string, at time.Time, want map[string]float64) {
	e.t.Helper()
	got := e.query(q, at)
	if !maps.EqualFunc(got, want, func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }) {
		e.t.Errorf("%s:\n got %v\nwant %v", q, sorted(got), sorted(want))
	}
}

func sorted(m map[string]float64) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(&b, "\n  %s %g", k, m[k])
	}
	return b.String()
}

// span describes one span for traces().
type span struct {
	service string // "" leaves service.name out
	name    string
	kind    ptrace.SpanKind
	status  ptrace.StatusCode
	dur     time.Duration
	trace   uint64 // trace ID (low bytes)
	id      uint64 // span ID
	parent  uint64 // parent span ID, 0 for none
	attrs   map[string]string
}

// traces builds a batch with one resource per span, in order.
func traces(spans ...span) ptrace.Traces {
	td := ptrace.NewTraces()
	for _, s := range spans {
		rs := td.ResourceSpans().AppendEmpty()
		if s.service != "" {
			rs.Resource().Attributes().PutStr("service.name", s.service)
		}
		sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
		sp.SetName(s.name)
		sp.SetKind(s.kind)
		sp.Status().SetCode(s.status)
		start := pcommon.NewTimestampFromTime(t0)
		sp.SetStartTimestamp(start)
		sp.SetEndTimestamp(start + pcommon.Timestamp(s.dur))
		sp.SetTraceID(traceID(s.trace))
		sp.SetSpanID(spanID(s.id))
		if s.parent != 0 {
			sp.SetParentSpanID(spanID(s.parent))
		}
		for k, v := range s.attrs {
			sp.Attributes().PutStr(k, v)
		}
	}
	return td
}

func traceID(n uint64) pcommon.TraceID {
	var id pcommon.TraceID
	binary.BigEndian.PutUint64(id[8:], n)
	id[0] = 1
	return id
}

func spanID(n uint64) pcommon.SpanID {
	var id pcommon.SpanID
	binary.BigEndian.PutUint64(id[:], n)
	return id
}

// logs builds a batch of records for service with the given severity
// numbers.
func logs(service string, sevs ...plog.SeverityNumber) plog.Logs {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	if service != "" {
		rl.Resource().Attributes().PutStr("service.name", service)
	}
	records := rl.ScopeLogs().AppendEmpty().LogRecords()
	for _, s := range sevs {
		lr := records.AppendEmpty()
		lr.SetSeverityNumber(s)
		lr.Body().SetStr("hello")
	}
	return ld
}
