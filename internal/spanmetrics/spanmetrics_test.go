package spanmetrics

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage/storagetest"
)

const (
	server   = ptrace.SpanKindServer
	client   = ptrace.SpanKindClient
	internal = ptrace.SpanKindInternal
	producer = ptrace.SpanKindProducer
	consumer = ptrace.SpanKindConsumer
	statusOK = ptrace.StatusCodeOk
	failed   = ptrace.StatusCodeError
)

func TestSpanMetrics(t *testing.T) {
	const ms = time.Millisecond
	tests := []struct {
		name  string
		spans []span
		query string
		want  map[string]float64
	}{
		{
			name: "calls by service, name, kind and status",
			spans: []span{
				{service: "checkout", name: "GET /cart", kind: server, status: statusOK, dur: ms},
				{service: "checkout", name: "GET /cart", kind: server, status: statusOK, dur: ms},
				{service: "checkout", name: "GET /cart", kind: server, status: failed, dur: ms},
				{service: "checkout", name: "SELECT", kind: client, dur: ms},
				{service: "", name: "work", kind: internal},
				{service: "catalog", name: "poll", kind: consumer},
				{service: "catalog", name: "send", kind: producer},
				{service: "catalog", name: "odd", kind: ptrace.SpanKind(42), status: ptrace.StatusCode(7)},
			},
			query: MetricSpanCalls,
			want: map[string]float64{
				`{__name__="traces_span_metrics_calls_total", service_name="checkout", span_kind="SPAN_KIND_SERVER", span_name="GET /cart", status_code="STATUS_CODE_OK"}`:        2,
				`{__name__="traces_span_metrics_calls_total", service_name="checkout", span_kind="SPAN_KIND_SERVER", span_name="GET /cart", status_code="STATUS_CODE_ERROR"}`:     1,
				`{__name__="traces_span_metrics_calls_total", service_name="checkout", span_kind="SPAN_KIND_CLIENT", span_name="SELECT", status_code="STATUS_CODE_UNSET"}`:        1,
				`{__name__="traces_span_metrics_calls_total", service_name="unknown_service", span_kind="SPAN_KIND_INTERNAL", span_name="work", status_code="STATUS_CODE_UNSET"}`: 1,
				`{__name__="traces_span_metrics_calls_total", service_name="catalog", span_kind="SPAN_KIND_CONSUMER", span_name="poll", status_code="STATUS_CODE_UNSET"}`:         1,
				`{__name__="traces_span_metrics_calls_total", service_name="catalog", span_kind="SPAN_KIND_PRODUCER", span_name="send", status_code="STATUS_CODE_UNSET"}`:         1,
				`{__name__="traces_span_metrics_calls_total", service_name="catalog", span_kind="SPAN_KIND_UNSPECIFIED", span_name="odd", status_code="STATUS_CODE_UNSET"}`:       1,
			},
		},
		{
			name: "buckets are cumulative with inclusive upper bounds",
			spans: []span{
				{service: "s", name: "op", kind: server, dur: 0},
				{service: "s", name: "op", kind: server, dur: 2 * ms},                 // le=0.002 exactly
				{service: "s", name: "op", kind: server, dur: 2*ms + time.Nanosecond}, // 0.004
				{service: "s", name: "op", kind: server, dur: 45 * ms},                // 0.05
				{service: "s", name: "op", kind: server, dur: 1300 * ms},              // 1.4
				{service: "s", name: "op", kind: server, dur: time.Minute},            // +Inf
			},
			query: `sum by (le) (traces_span_metrics_duration_seconds_bucket)`,
			want: map[string]float64{
				`{le="0.002"}`: 2, `{le="0.004"}`: 3, `{le="0.006"}`: 3, `{le="0.008"}`: 3, `{le="0.01"}`: 3,
				`{le="0.05"}`: 4, `{le="0.1"}`: 4, `{le="0.2"}`: 4, `{le="0.4"}`: 4, `{le="0.8"}`: 4,
				`{le="1"}`: 4, `{le="1.4"}`: 5, `{le="2"}`: 5, `{le="5"}`: 5, `{le="10"}`: 5, `{le="15"}`: 5,
				`{le="+Inf"}`: 6,
			},
		},
		{
			name: "sum and count in seconds",
			spans: []span{
				{service: "s", name: "op", kind: server, dur: 250 * ms},
				{service: "s", name: "op", kind: server, dur: 750 * ms},
				{service: "s", name: "op", kind: server, status: failed, dur: 3 * time.Second},
			},
			query: `sum by (__name__, status_code) ({__name__=~"traces_span_metrics_duration_seconds_(sum|count)"})`,
			want: map[string]float64{
				`{__name__="traces_span_metrics_duration_seconds_count", status_code="STATUS_CODE_UNSET"}`: 2,
				`{__name__="traces_span_metrics_duration_seconds_sum", status_code="STATUS_CODE_UNSET"}`:   1,
				`{__name__="traces_span_metrics_duration_seconds_count", status_code="STATUS_CODE_ERROR"}`: 1,
				`{__name__="traces_span_metrics_duration_seconds_sum", status_code="STATUS_CODE_ERROR"}`:   3,
			},
		},
		{
			name: "quantiles interpolate within the connector's buckets",
			spans: func() []span {
				var s []span
				for range 90 {
					s = append(s, span{service: "s", name: "op", kind: server, dur: 30 * ms}) // (0.01, 0.05]
				}
				for range 10 {
					s = append(s, span{service: "s", name: "op", kind: server, dur: 300 * ms}) // (0.2, 0.4]
				}
				return s
			}(),
			// Rank 50 of 90 in (0.01, 0.05]; rank 95 half way into (0.2, 0.4].
			query: `label_replace(histogram_quantile(0.5, traces_span_metrics_duration_seconds_bucket), "q", "0.5", "", "")
				or label_replace(histogram_quantile(0.95, traces_span_metrics_duration_seconds_bucket), "q", "0.95", "", "")`,
			want: map[string]float64{
				`{q="0.5", service_name="s", span_kind="SPAN_KIND_SERVER", span_name="op", status_code="STATUS_CODE_UNSET"}`:  0.01 + 0.04*50/90,
				`{q="0.95", service_name="s", span_kind="SPAN_KIND_SERVER", span_name="op", status_code="STATUS_CODE_UNSET"}`: 0.3,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Options{})
			e.rec.RecordSpans(traces(tc.spans[:len(tc.spans)/2]...))
			e.rec.RecordSpans(traces(tc.spans[len(tc.spans)/2:]...))
			at := e.flushAt(15 * time.Second)
			e.wantValues(tc.query, at, tc.want)
		})
	}
}

// TestCumulativeAcrossFlushes pins what rate() and increase() see: every
// flush appends the running total, and a label set's first sample follows
// a zero at the previous flush so its first interval counts too.
func TestCumulativeAcrossFlushes(t *testing.T) {
	e := newEnv(t, Options{})
	batch := func(n int) ptrace.Traces {
		spans := make([]span, n)
		for i := range spans {
			spans[i] = span{service: "gateway", name: "GET /", kind: server, dur: 20 * time.Millisecond}
		}
		return traces(spans...)
	}
	e.rec.RecordSpans(batch(10))
	t1 := e.flushAt(15 * time.Second)
	e.rec.RecordSpans(batch(20))
	t2 := e.flushAt(15 * time.Second)
	t3 := e.flushAt(15 * time.Second) // nothing new: the total repeats
	e.rec.RecordSpans(traces(span{service: "gateway", name: "GET /new", kind: server}))
	t4 := e.flushAt(15 * time.Second)

	calls := `traces_span_metrics_calls_total{span_name="GET /"}`
	wantSamples(t, e, calls, [][2]float64{
		{float64(t0.UnixMilli()), 0}, {float64(t1.UnixMilli()), 10}, {float64(t2.UnixMilli()), 30},
		{float64(t3.UnixMilli()), 30}, {float64(t4.UnixMilli()), 30},
	})
	wantSamples(t, e, `traces_span_metrics_calls_total{span_name="GET /new"}`, [][2]float64{
		{float64(t3.UnixMilli()), 0}, {float64(t4.UnixMilli()), 1},
	})
	if got := e.value(`increase(`+calls+`[45s])`, t3); got != 30 {
		t.Errorf("increase over the first three flushes = %v, want 30", got)
	}
	if got := e.value(`increase(traces_span_metrics_calls_total{span_name="GET /new"}[16s])`, t4); got != 1 {
		t.Errorf("increase over a new label set's first interval = %v, want 1", got)
	}
	if got := e.value(`rate(traces_span_metrics_duration_seconds_count{span_name="GET /"}[16s])`, t2); got != 20.0/15 {
		t.Errorf("rate of the histogram count = %v, want %v", got, 20.0/15)
	}
}

// TestRestart: a new Recorder (vigil restarted) starts its counters from
// zero on the same series, and increase() sees a counter reset, not a drop.
func TestRestart(t *testing.T) {
	e := newEnv(t, Options{})
	batch := func(n int) ptrace.Traces {
		spans := make([]span, n)
		for i := range spans {
			spans[i] = span{service: "s", name: "op", kind: server}
		}
		return traces(spans...)
	}
	e.rec.RecordSpans(batch(5))
	t1 := e.flushAt(15 * time.Second)

	restart := e.clock.Advance(5 * time.Second)
	rec2, err := New(Options{Appendable: e.db, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	e.rec = rec2
	e.rec.RecordSpans(batch(3))
	t2 := e.flushAt(10 * time.Second)
	wantSamples(t, e, `traces_span_metrics_calls_total{span_name="op"}`, [][2]float64{
		{float64(t0.UnixMilli()), 0}, {float64(t1.UnixMilli()), 5},
		{float64(restart.UnixMilli()), 0}, {float64(t2.UnixMilli()), 3},
	})
	if got := e.value(`increase(traces_span_metrics_calls_total[31s])`, t2); got != 8 {
		t.Errorf("increase across the restart = %v, want 8", got)
	}
}

// wantSamples reads the raw float samples of the one series sel matches.
func wantSamples(t *testing.T, e *env, sel string, want [][2]float64) {
	t.Helper()
	q, err := e.db.Querier(0, t0.Add(time.Hour).UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	name, rest, _ := strings.Cut(sel, "{")
	matchers := []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, name)}
	for _, kv := range strings.Split(strings.TrimSuffix(rest, "}"), ",") {
		k, v, _ := strings.Cut(kv, "=")
		matchers = append(matchers, labels.MustNewMatcher(labels.MatchEqual, k, strings.Trim(v, `"`)))
	}
	ss := q.Select(t.Context(), false, nil, matchers...)
	var got [][2]float64
	n := 0
	for ss.Next() {
		n++
		it := ss.At().Iterator(nil)
		for it.Next() == chunkenc.ValFloat {
			ts, v := it.At()
			got = append(got, [2]float64{float64(ts), v})
		}
	}
	if n != 1 || len(got) != len(want) {
		t.Fatalf("%s: %d series, samples %v; want one series with %v", sel, n, got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s: samples %v, want %v", sel, got, want)
		}
	}
}

func TestServiceGraph(t *testing.T) {
	const ms = time.Millisecond
	edge := func(client, server, conn string) string {
		if conn == "" {
			return `{client="` + client + `", server="` + server + `"}`
		}
		return `{client="` + client + `", connection_type="` + conn + `", server="` + server + `"}`
	}
	type step struct {
		advance time.Duration // clock advance before the batch
		spans   []span
	}
	tests := []struct {
		name         string
		opts         Options
		steps        []step
		wantTotal    map[string]float64
		wantFailed   map[string]float64
		wantServer   map[string]float64 // server_seconds_sum
		wantClient   map[string]float64 // client_seconds_sum
		wantUnpaired map[[2]string]float64
		wantEvicted  map[string]float64
		wantPending  int
	}{
		{
			name: "client first, server in a later batch",
			steps: []step{
				{spans: []span{{service: "gateway", name: "GET /p", kind: client, trace: 1, id: 10, parent: 1, dur: 30 * ms}}},
				{advance: 2 * time.Second, spans: []span{{service: "catalog", name: "GET /p", kind: server, trace: 1, id: 11, parent: 10, dur: 20 * ms}}},
			},
			wantTotal:  map[string]float64{edge("gateway", "catalog", ""): 1},
			wantFailed: map[string]float64{edge("gateway", "catalog", ""): 0},
			wantServer: map[string]float64{edge("gateway", "catalog", ""): 0.02},
			wantClient: map[string]float64{edge("gateway", "catalog", ""): 0.03},
		},
		{
			name: "server first (its batch was exported sooner), failed on the server",
			steps: []step{
				{spans: []span{{service: "catalog", name: "GET /p", kind: server, status: failed, trace: 2, id: 21, parent: 20}}},
				{advance: 5 * time.Second, spans: []span{{service: "gateway", name: "GET /p", kind: client, trace: 2, id: 20}}},
			},
			wantTotal:  map[string]float64{edge("gateway", "catalog", ""): 1},
			wantFailed: map[string]float64{edge("gateway", "catalog", ""): 1},
		},
		{
			name: "failed on the client, in the same batch, the same span twice",
			steps: []step{{spans: []span{
				{service: "gateway", name: "GET /p", kind: client, status: failed, trace: 3, id: 30},
				{service: "gateway", name: "GET /p", kind: client, status: failed, trace: 3, id: 30},
				{service: "catalog", name: "GET /p", kind: server, trace: 3, id: 31, parent: 30},
			}}},
			wantTotal:  map[string]float64{edge("gateway", "catalog", ""): 1},
			wantFailed: map[string]float64{edge("gateway", "catalog", ""): 1},
		},
		{
			name: "same span ID in another trace is another edge",
			steps: []step{{spans: []span{
				{service: "a", kind: client, trace: 4, id: 40},
				{service: "b", kind: server, trace: 5, id: 41, parent: 40},
			}}},
			wantPending: 2,
		},
		{
			name: "producer and consumer",
			steps: []step{{spans: []span{
				{service: "orders", name: "publish", kind: producer, trace: 6, id: 60},
				{service: "mailer", name: "process", kind: consumer, trace: 6, id: 61, parent: 60},
			}}},
			wantTotal:  map[string]float64{edge("orders", "mailer", "messaging_system"): 1},
			wantFailed: map[string]float64{edge("orders", "mailer", "messaging_system"): 0},
		},
		{
			name: "a database client span is a whole edge",
			steps: []step{{spans: []span{
				{service: "orders", name: "SELECT", kind: client, status: failed, trace: 7, id: 70, dur: 5 * ms,
					attrs: map[string]string{"db.system.name": "postgresql", "db.namespace": "orders_db"}},
				{service: "orders", name: "GET", kind: client, trace: 7, id: 71, attrs: map[string]string{"db.system": "redis"}},
			}}},
			wantTotal: map[string]float64{
				edge("orders", "orders_db", "database"): 1,
				edge("orders", "redis", "database"):     1,
			},
			wantFailed: map[string]float64{
				edge("orders", "orders_db", "database"): 1,
				edge("orders", "redis", "database"):     0,
			},
			wantServer: map[string]float64{edge("orders", "orders_db", "database"): 0.005, edge("orders", "redis", "database"): 0},
		},
		{
			name: "root and internal spans are no edge",
			steps: []step{{spans: []span{
				{service: "gateway", kind: server, trace: 8, id: 80},
				{service: "gateway", kind: internal, trace: 8, id: 81, parent: 80},
			}}},
		},
		{
			name: "halves older than the TTL are unpaired, by side",
			opts: Options{EdgeTTL: 10 * time.Second},
			steps: []step{
				{spans: []span{{service: "gateway", kind: client, trace: 9, id: 90}}},
				{advance: 11 * time.Second, spans: []span{
					{service: "catalog", kind: server, trace: 9, id: 91, parent: 90},
					{service: "catalog", kind: server, trace: 9, id: 92, parent: 99},
				}},
				{advance: 10 * time.Second}, // the flush expires the servers
			},
			wantUnpaired: map[[2]string]float64{{"gateway", "client"}: 1, {"catalog", "server"}: 2},
		},
		{
			name: "a full store evicts the oldest half",
			opts: Options{MaxPendingEdges: 2},
			steps: []step{
				{spans: []span{
					{service: "a", kind: client, trace: 10, id: 100},
					{service: "a", kind: client, trace: 10, id: 101},
					{service: "a", kind: client, trace: 10, id: 102}, // evicts 100
				}},
				{spans: []span{
					{service: "b", kind: server, trace: 10, id: 111, parent: 101}, // pairs
					{service: "b", kind: server, trace: 10, id: 110, parent: 100}, // waits for an evicted client
				}},
				{spans: []span{
					{service: "a", kind: client, trace: 10, id: 103}, // evicts 102
					{service: "a", kind: client, trace: 10, id: 104}, // evicts the server half of 100
				}},
			},
			wantTotal:   map[string]float64{edge("a", "b", ""): 1},
			wantFailed:  map[string]float64{edge("a", "b", ""): 0},
			wantEvicted: map[string]float64{"client": 2, "server": 1},
			wantPending: 2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.opts)
			for _, s := range tc.steps {
				e.clock.Advance(s.advance)
				if len(s.spans) > 0 {
					e.rec.RecordSpans(traces(s.spans...))
				}
			}
			at := e.flushAt(time.Second)
			e.wantValues(`sum by (client, server, connection_type) (traces_service_graph_request_total)`, at, orEmpty(tc.wantTotal))
			e.wantValues(`sum by (client, server, connection_type) (traces_service_graph_request_failed_total)`, at, orEmpty(tc.wantFailed))
			if tc.wantServer != nil {
				e.wantValues(`sum by (client, server, connection_type) (traces_service_graph_request_server_seconds_sum)`, at, tc.wantServer)
			}
			if tc.wantClient != nil {
				e.wantValues(`sum by (client, server, connection_type) (traces_service_graph_request_client_seconds_sum)`, at, tc.wantClient)
			}
			for k, want := range tc.wantUnpaired {
				if got := testutil.ToFloat64(e.rec.unpairedVec.WithLabelValues(k[0], k[1])); got != want {
					t.Errorf("unpaired{service=%q,side=%q} = %v, want %v", k[0], k[1], got, want)
				}
			}
			if got, want := testutil.CollectAndCount(e.rec.unpairedVec), len(tc.wantUnpaired); got != want {
				t.Errorf("%d unpaired label sets, want %d", got, want)
			}
			for i, side := range []string{"client", "server"} {
				if got := testutil.ToFloat64(e.rec.evicted[i]); got != tc.wantEvicted[side] {
					t.Errorf("evicted{side=%q} = %v, want %v", side, got, tc.wantEvicted[side])
				}
			}
			if got := e.rec.pending.len(); got != tc.wantPending {
				t.Errorf("%d pending halves, want %d", got, tc.wantPending)
			}
		})
	}
}

func orEmpty(m map[string]float64) map[string]float64 {
	if m == nil {
		return map[string]float64{}
	}
	return m
}

func TestPendingStoreReusesSlots(t *testing.T) {
	e := newEnv(t, Options{MaxPendingEdges: 3})
	for i := range uint64(1000) {
		e.rec.RecordSpans(traces(
			span{service: "a", kind: client, trace: i, id: 1},
			span{service: "a", kind: client, trace: i, id: 2},
		))
		e.rec.RecordSpans(traces(span{service: "b", kind: server, trace: i, id: 3, parent: 1}))
	}
	p := &e.rec.pending
	if len(p.slots) > 3 || p.len() != 2 {
		t.Errorf("%d slots for %d pending halves, want at most 3 for 2", len(p.slots), p.len())
	}
	// The list and the index agree, oldest first.
	n := 0
	for i := p.head; i >= 0; i = p.slots[i].next {
		if j, ok := p.index[p.slots[i].key]; !ok || j != i {
			t.Fatalf("slot %d is not indexed", i)
		}
		n++
	}
	if n != p.len() {
		t.Errorf("list has %d entries, index %d", n, p.len())
	}
}

// A burst that left the pending store empty but large gives its slots back
// at the next flush; halves arriving after still pair.
func TestPendingStoreReleasedWhenEmpty(t *testing.T) {
	e := newEnv(t, Options{})
	for i := range uint64(2 * releaseAbove) {
		e.rec.RecordSpans(traces(span{service: "a", kind: client, trace: i, id: 1}))
	}
	p := &e.rec.pending
	e.flushAt(time.Second)
	if p.len() != 2*releaseAbove {
		t.Fatalf("%d halves pending before the TTL, want %d", p.len(), 2*releaseAbove)
	}
	e.flushAt(DefaultEdgeTTL)
	if p.len() != 0 || cap(p.slots) != 0 || cap(p.free) != 0 {
		t.Errorf("after the TTL: %d pending, %d slots, %d free kept, want none", p.len(), cap(p.slots), cap(p.free))
	}
	e.rec.RecordSpans(traces(span{service: "a", kind: client, trace: 1 << 40, id: 1}))
	e.rec.RecordSpans(traces(span{service: "b", kind: server, trace: 1 << 40, id: 2, parent: 1}))
	at := e.flushAt(time.Second)
	e.wantValues(`traces_service_graph_request_total`, at, map[string]float64{
		`{__name__="traces_service_graph_request_total", client="a", server="b"}`: 1,
	})
}

func TestLogRecords(t *testing.T) {
	e := newEnv(t, Options{})
	e.rec.RecordLogs(logs("orders",
		plog.SeverityNumberUnspecified,
		plog.SeverityNumberTrace, plog.SeverityNumberTrace4,
		plog.SeverityNumberDebug,
		plog.SeverityNumberInfo, plog.SeverityNumberInfo2, plog.SeverityNumberInfo4,
		plog.SeverityNumberWarn3,
		plog.SeverityNumberError, plog.SeverityNumberError4,
		plog.SeverityNumberFatal4,
		plog.SeverityNumber(25), plog.SeverityNumber(-1),
	))
	e.rec.RecordLogs(logs("", plog.SeverityNumberInfo))
	at := e.flushAt(15 * time.Second)
	e.wantValues(`vigil_log_records_total`, at, map[string]float64{
		`{__name__="vigil_log_records_total", service_name="orders", severity="UNSET"}`:         3,
		`{__name__="vigil_log_records_total", service_name="orders", severity="TRACE"}`:         2,
		`{__name__="vigil_log_records_total", service_name="orders", severity="DEBUG"}`:         1,
		`{__name__="vigil_log_records_total", service_name="orders", severity="INFO"}`:          3,
		`{__name__="vigil_log_records_total", service_name="orders", severity="WARN"}`:          1,
		`{__name__="vigil_log_records_total", service_name="orders", severity="ERROR"}`:         2,
		`{__name__="vigil_log_records_total", service_name="orders", severity="FATAL"}`:         1,
		`{__name__="vigil_log_records_total", service_name="unknown_service", severity="INFO"}`: 1,
	})
}

func TestSeriesCap(t *testing.T) {
	e := newEnv(t, Options{MaxSeries: 2})
	e.rec.RecordSpans(traces(
		span{service: "a", name: "op1", kind: server},
		span{service: "a", name: "op2", kind: server},
		span{service: "a", name: "op3", kind: server},                 // a's overflow label set
		span{service: "a", name: "op4", kind: server},                 // the same
		span{service: "a", name: "op1", kind: server},                 // still its own
		span{service: "b", name: "op1", kind: server, status: failed}, // b's: the second overflow set
		span{service: "c", name: "op1", kind: server},                 // overflow sets full too
		span{service: "d", name: "op1", kind: server},
	))
	e.rec.RecordLogs(logs("a", plog.SeverityNumberInfo, plog.SeverityNumberWarn))
	e.rec.RecordLogs(logs("b", plog.SeverityNumberInfo, plog.SeverityNumberInfo))
	for i, srv := range []string{"s1", "s2", "s3", "s4"} {
		e.rec.RecordSpans(traces(
			span{service: "gw", kind: client, trace: uint64(i), id: 1},
			span{service: srv, kind: server, trace: uint64(i), id: 2, parent: 1},
		))
	}
	at := e.flushAt(15 * time.Second)
	e.wantValues(`sum by (service_name, span_name, span_kind, status_code) (traces_span_metrics_calls_total)`, at, map[string]float64{
		`{service_name="a", span_kind="SPAN_KIND_SERVER", span_name="op1", status_code="STATUS_CODE_UNSET"}`:                     2,
		`{service_name="a", span_kind="SPAN_KIND_SERVER", span_name="op2", status_code="STATUS_CODE_UNSET"}`:                     1,
		`{service_name="a", span_kind="SPAN_KIND_SERVER", span_name="__overflow__", status_code="STATUS_CODE_UNSET"}`:            2,
		`{service_name="b", span_kind="SPAN_KIND_SERVER", span_name="__overflow__", status_code="STATUS_CODE_ERROR"}`:            1,
		`{service_name="__overflow__", span_kind="SPAN_KIND_SERVER", span_name="__overflow__", status_code="STATUS_CODE_UNSET"}`: 2 + 4, // c, d, s1-s4
		`{service_name="__overflow__", span_kind="SPAN_KIND_CLIENT", span_name="__overflow__", status_code="STATUS_CODE_UNSET"}`: 4,     // gw
	})
	// The graph keeps real service names although their spans overflowed.
	e.wantValues(`sum by (client, server) (traces_service_graph_request_total)`, at, map[string]float64{
		`{client="gw", server="s1"}`:           1,
		`{client="gw", server="s2"}`:           1,
		`{client="gw", server="__overflow__"}`: 2,
	})
	e.wantValues(`vigil_log_records_total`, at, map[string]float64{
		`{__name__="vigil_log_records_total", service_name="a", severity="INFO"}`:            1,
		`{__name__="vigil_log_records_total", service_name="a", severity="WARN"}`:            1,
		`{__name__="vigil_log_records_total", service_name="__overflow__", severity="INFO"}`: 2,
	})
	for family, want := range map[string]float64{"span_metrics": 5 + 8, "service_graph": 2, "log_records": 2} {
		if got := counterValue(t, e, "vigil_spanmetrics_overflow_total", "family", family); got != want {
			t.Errorf("vigil_spanmetrics_overflow_total{family=%q} = %v, want %v", family, got, want)
		}
	}
}

// TestOverflowDoesNotAllocate: a cardinality explosion, past the cap, costs
// no memory per span.
func TestOverflowDoesNotAllocate(t *testing.T) {
	e := newEnv(t, Options{MaxSeries: 1})
	spans := make([]span, 100)
	for i := range spans {
		spans[i] = span{service: "a", name: fmt.Sprintf("GET /user/%d", i), kind: internal}
	}
	td := traces(spans...)
	e.rec.RecordSpans(td)
	if n := testing.AllocsPerRun(10, func() { e.rec.RecordSpans(td) }); n != 0 {
		t.Errorf("%v allocations per batch of overflowing spans, want 0", n)
	}
	if got := len(e.rec.spans.index); got != 2 {
		t.Errorf("%d label sets, want 2 (op0 and the overflow)", got)
	}
}

// counterValue reads a counter from the env's registry.
func counterValue(t *testing.T, e *env, name, label, value string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestLabelValuesAreValidUTF8(t *testing.T) {
	e := newEnv(t, Options{})
	e.rec.RecordSpans(traces(
		span{service: "caf\xe9", name: "GET /\xff", kind: server},
		span{service: "caf\xe9", name: "GET /\xff", kind: server},
	))
	at := e.flushAt(15 * time.Second)
	e.wantValues(`sum by (service_name, span_name) (traces_span_metrics_calls_total)`, at, map[string]float64{
		"{service_name=\"caf\uFFFD\", span_name=\"GET /\uFFFD\"}": 2,
	})
}

// TestConcurrentUse runs consumers against Run and Flush; with -race it
// checks the locking, and the totals check that nothing is lost.
func TestConcurrentUse(t *testing.T) {
	e := newEnv(t, Options{Interval: time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	runErr := make(chan error, 1)
	go func() { runErr <- e.rec.Run(ctx) }()

	const workers, batches = 8, 50
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for b := range batches {
				trace := uint64(w*batches + b)
				e.rec.RecordSpans(traces(
					span{service: "gw", name: "GET /", kind: server, trace: trace, id: 1},
					span{service: "gw", name: "call", kind: client, trace: trace, id: 2, parent: 1},
				))
				e.rec.RecordSpans(traces(span{service: "api", name: "GET /", kind: server, trace: trace, id: 3, parent: 2}))
				e.rec.RecordLogs(logs("gw", plog.SeverityNumberInfo))
				if b%10 == 0 {
					e.clock.Advance(time.Millisecond)
					if err := e.rec.Flush(t.Context()); err != nil {
						t.Errorf("Flush: %v", err)
					}
				}
			}
		})
	}
	wg.Wait()
	at := e.clock.Advance(time.Second)
	cancel()
	if err := <-runErr; err != nil {
		t.Fatalf("Run: %v", err)
	}
	const n = workers * batches
	e.wantValues(`sum by (service_name) (traces_span_metrics_calls_total)`, at, map[string]float64{
		`{service_name="gw"}`: 2 * n, `{service_name="api"}`: n,
	})
	e.wantValues(`sum by (client, server) (traces_service_graph_request_total)`, at, map[string]float64{`{client="gw", server="api"}`: n})
	e.wantValues(`sum(vigil_log_records_total)`, at, map[string]float64{`{}`: n})
}

// TestRunFlushesOnStop: what was consumed before ctx ended is stored.
func TestRunFlushesOnStop(t *testing.T) {
	e := newEnv(t, Options{Interval: time.Hour})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.rec.Run(ctx) }()
	e.rec.RecordSpans(traces(span{service: "s", name: "op", kind: server}))
	at := e.clock.Advance(time.Second)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := e.value(MetricSpanCalls, at); got != 1 {
		t.Errorf("calls after stop = %v, want 1", got)
	}
}

// recordingAppendable records every append and can fail them.
type recordingAppendable struct {
	storage.AppendableV2
	mu      sync.Mutex
	opts    map[string]storage.AOptions // by __name__
	failing error
}

func (a *recordingAppendable) AppenderV2(ctx context.Context) storage.AppenderV2 {
	return &recordingAppender{AppenderV2: a.AppendableV2.AppenderV2(ctx), a: a}
}

type recordingAppender struct {
	storage.AppenderV2
	a *recordingAppendable
}

func (r *recordingAppender) Append(ref storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AOptions) (storage.SeriesRef, error) {
	r.a.mu.Lock()
	err := r.a.failing
	if r.a.opts == nil {
		r.a.opts = map[string]storage.AOptions{}
	}
	r.a.opts[ls.Get(model.MetricNameLabel)] = opts
	r.a.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return r.AppenderV2.Append(ref, ls, st, t, v, h, fh, opts)
}

func TestMetadataWithEverySample(t *testing.T) {
	var app *recordingAppendable
	e := newEnvWith(t, Options{}, func(db storage.AppendableV2) storage.AppendableV2 {
		app = &recordingAppendable{AppendableV2: db}
		return app
	})
	e.rec.RecordSpans(traces(
		span{service: "a", kind: client, trace: 1, id: 1},
		span{service: "b", kind: server, trace: 1, id: 2, parent: 1},
	))
	e.rec.RecordLogs(logs("a", plog.SeverityNumberInfo))
	e.flushAt(time.Second)
	want := Metadata()
	if len(want) != 8 {
		t.Errorf("Metadata() has %d families, want 8", len(want))
	}
	for name, o := range app.opts {
		family := o.MetricFamilyName
		if name != family && strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count") != family {
			t.Errorf("%s appended with family %q", name, family)
		}
		if md, ok := want[family]; !ok || o.Metadata != md || md.Help == "" {
			t.Errorf("%s appended with metadata %+v, want %+v", name, o.Metadata, md)
		}
	}
	if len(app.opts) != 1+3+2+2*3+1 {
		t.Errorf("appended %d metric names, want 13", len(app.opts))
	}
}

// TestFlushFailureIsRetried: a storage failure loses nothing; the next
// flush appends the totals, after the zero of the label set's start.
func TestFlushFailureIsRetried(t *testing.T) {
	var app *recordingAppendable
	e := newEnvWith(t, Options{}, func(db storage.AppendableV2) storage.AppendableV2 {
		app = &recordingAppendable{AppendableV2: db, failing: errors.New("disk on fire")}
		return app
	})
	e.rec.RecordSpans(traces(span{service: "s", name: "op", kind: server}))
	e.clock.Advance(15 * time.Second)
	if err := e.rec.Flush(t.Context()); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("Flush = %v, want the storage error", err)
	}
	app.mu.Lock()
	app.failing = nil
	app.mu.Unlock()
	e.rec.RecordSpans(traces(span{service: "s", name: "op", kind: server}))
	at := e.flushAt(15 * time.Second)
	wantSamples(t, e, `traces_span_metrics_calls_total{span_name="op"}`, [][2]float64{
		{float64(t0.UnixMilli()), 0}, {float64(at.UnixMilli()), 2},
	})
	if got := testutil.ToFloat64(e.rec.flushFailures); got != 1 {
		t.Errorf("flush failures = %v, want 1", got)
	}
}

func TestNew(t *testing.T) {
	func() {
		defer func() {
			if recover() == nil {
				t.Error("New without Appendable did not panic")
			}
		}()
		_, _ = New(Options{})
	}()
	db := storagetest.OpenTSDB(t, storagetest.TSDBOptions{})
	if _, err := New(Options{Appendable: db, EdgeTTL: -time.Second}); err == nil {
		t.Error("New with a negative EdgeTTL succeeded")
	}
	reg := prometheus.NewRegistry()
	if _, err := New(Options{Appendable: db, Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{Appendable: db, Registerer: reg}); err == nil {
		t.Error("a second Recorder on the same registry succeeded")
	}
}

// Each vigil node sharing a metric store writes its own series.
func TestExternalLabels(t *testing.T) {
	e := newEnv(t, Options{ExternalLabels: labels.FromStrings("vigil_node", "a:7070")})
	e.rec.RecordLogs(logs("orders", plog.SeverityNumberInfo))
	at := e.flushAt(15 * time.Second)
	e.wantValues(`vigil_log_records_total`, at, map[string]float64{
		`{__name__="vigil_log_records_total", service_name="orders", severity="INFO", vigil_node="a:7070"}`: 1,
	})
}
