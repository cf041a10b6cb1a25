// Package loadgen builds realistic telemetry and sends it to vigil the way
// real clients do (OTLP/HTTP protobuf, OTLP/gRPC, remote_write). The kill -9
// test and the load tool under bench/ share it, so that the numbers in
// docs/performance.md come from the same data the durability test checks.
package loadgen

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

var (
	services = []string{"frontend", "checkout", "payment", "inventory", "shipping"}
	routes   = []string{"/api/orders/{id}", "/api/cart", "/api/products/{sku}", "/api/pay", "/healthz", "/api/users/{id}/orders"}
	methods  = []string{"GET", "GET", "GET", "POST", "PUT", "DELETE"}
	messages = []string{"order placed", "payment authorized", "cache miss", "retrying request", "inventory reserved", "upstream timeout"}
	// resources name the routes of Options.Operations.
	resources = []string{"orders/{id}", "cart", "products/{sku}", "pay", "users/{id}/orders", "search", "quotes", "refunds/{id}"}
)

// Rare values that Options.RareEvery mixes into the data, so that searches
// have selective variants next to unselective ones.
const (
	// RareTagKey and RareTagValue are a span attribute about one span in
	// RareEvery carries.
	RareTagKey   = "feature_flag.variant"
	RareTagValue = "canary"
	// RareLogToken is a word that only about one log body in RareEvery
	// contains (in RareLogMessage).
	RareLogToken   = "ledger"
	RareLogMessage = "ledger checksum mismatch"
)

// Options shapes a Generator's data. The zero value makes New's data.
type Options struct {
	// Services are the service.name values; each batch belongs to one,
	// drawn at random. Empty means the five shop services.
	Services []string
	// Operations, when positive, gives every service that many server
	// operations of its own (a method and a route), which its client spans
	// also call in turn; 0 keeps the routes all services share.
	Operations int
	// Spread is how far before now a batch's traces and log records start;
	// 0 means 2 s for traces and 1 s for log records.
	Spread time.Duration
	// RareEvery, when positive, sets RareTagKey=RareTagValue on about one
	// span in RareEvery and writes RareLogMessage as about one log body in
	// RareEvery.
	RareEvery int
}

// operation is a server operation of a service under Options.Operations.
type operation struct{ method, route, name string }

// Generator makes reproducible batches. It is not safe for concurrent use;
// give each goroutine its own (with its own seed).
type Generator struct {
	rnd      *rand.Rand
	seq      uint64
	services []string
	ops      map[string][]operation // by service, under Options.Operations
	spread   time.Duration
	rare     int
}

// New returns a generator seeded with seed.
func New(seed uint64) *Generator { return NewWithOptions(seed, Options{}) }

// NewWithOptions returns a generator seeded with seed that makes the data
// opts describe.
func NewWithOptions(seed uint64, opts Options) *Generator {
	g := &Generator{
		rnd:      rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		services: services,
		spread:   opts.Spread,
		rare:     opts.RareEvery,
	}
	if len(opts.Services) > 0 {
		g.services = slices.Clone(opts.Services)
	}
	if opts.Operations > 0 {
		g.ops = make(map[string][]operation, len(g.services))
		for _, svc := range g.services {
			ops := make([]operation, opts.Operations)
			for i := range ops {
				res := resources[i%len(resources)]
				if n := i / len(resources); n > 0 {
					res = fmt.Sprintf("v%d/%s", n+1, res)
				}
				m := methods[i%len(methods)]
				ops[i] = operation{method: m, route: "/api/" + res}
				ops[i].name = m + " " + ops[i].route
			}
			g.ops[svc] = ops
		}
	}
	return g
}

// spreadMillis is how many milliseconds before now a batch's items start
// (def when Options.Spread is 0).
func (g *Generator) spreadMillis(def int) int {
	if g.spread > 0 {
		return max(1, int(g.spread/time.Millisecond))
	}
	return def
}

// isRare draws whether the next item carries the rare value.
func (g *Generator) isRare() bool { return g.rare > 0 && g.rnd.IntN(g.rare) == 0 }

// TraceID returns a fresh random trace id.
func (g *Generator) TraceID() pcommon.TraceID {
	var id pcommon.TraceID
	binary.BigEndian.PutUint64(id[:8], g.rnd.Uint64())
	binary.BigEndian.PutUint64(id[8:], g.rnd.Uint64()|1)
	return id
}

func (g *Generator) spanID() pcommon.SpanID {
	var id pcommon.SpanID
	binary.BigEndian.PutUint64(id[:], g.rnd.Uint64()|1)
	return id
}

// Traces returns nTraces traces of spansPerTrace spans each, ending around
// now, with the attributes of an instrumented HTTP service (about ten per
// span). It also returns the trace ids, for checking them later.
func (g *Generator) Traces(nTraces, spansPerTrace int, now time.Time) (ptrace.Traces, []pcommon.TraceID) {
	td := ptrace.NewTraces()
	ids := make([]pcommon.TraceID, 0, nTraces)
	svc := g.services[g.rnd.IntN(len(g.services))]
	ops := g.ops[svc]
	rs := td.ResourceSpans().AppendEmpty()
	res := rs.Resource().Attributes()
	res.PutStr("service.name", svc)
	res.PutStr("service.version", "1.4.2")
	res.PutStr("service.instance.id", fmt.Sprintf("%s-%d", svc, g.rnd.IntN(3)))
	res.PutStr("host.name", "node-7")
	res.PutStr("telemetry.sdk.language", "go")
	res.PutStr("telemetry.sdk.name", "opentelemetry")
	res.PutStr("telemetry.sdk.version", "1.38.0")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp")
	ss.Scope().SetVersion("0.63.0")
	spans := ss.Spans()
	spans.EnsureCapacity(nTraces * spansPerTrace)
	for range nTraces {
		tid := g.TraceID()
		ids = append(ids, tid)
		start := now.Add(-time.Duration(g.rnd.IntN(g.spreadMillis(2000))) * time.Millisecond)
		var root pcommon.SpanID
		for i := range spansPerTrace {
			g.seq++
			sp := spans.AppendEmpty()
			sp.SetTraceID(tid)
			id := g.spanID()
			sp.SetSpanID(id)
			var route, method string
			if ops != nil {
				op := ops[g.rnd.IntN(len(ops))]
				if i > 0 {
					op = ops[i%len(ops)]
				}
				route, method = op.route, op.method
			} else {
				route = routes[g.rnd.IntN(len(routes))]
				method = methods[g.rnd.IntN(len(methods))]
			}
			if i == 0 {
				root = id
				sp.SetKind(ptrace.SpanKindServer)
				sp.SetName(method + " " + route)
			} else {
				sp.SetParentSpanID(root)
				sp.SetKind(ptrace.SpanKindClient)
				if ops != nil {
					sp.SetName(ops[i%len(ops)].name)
				} else {
					sp.SetName(fmt.Sprintf("%s %s", method, routes[i%len(routes)]))
				}
			}
			// Log-normal latency around 20ms, as request latencies tend to be.
			d := time.Duration(math.Exp(g.rnd.NormFloat64()*0.8+3) * float64(time.Millisecond))
			s := start.Add(time.Duration(i) * time.Millisecond)
			sp.SetStartTimestamp(pcommon.NewTimestampFromTime(s))
			sp.SetEndTimestamp(pcommon.NewTimestampFromTime(s.Add(d)))
			code := int64(200)
			if g.rnd.IntN(50) == 0 {
				code = 500
				sp.Status().SetCode(ptrace.StatusCodeError)
				sp.Status().SetMessage("internal error")
			}
			a := sp.Attributes()
			a.EnsureCapacity(10)
			a.PutStr("http.request.method", method)
			a.PutStr("http.route", route)
			a.PutInt("http.response.status_code", code)
			a.PutStr("url.path", fmt.Sprintf("/api/orders/%d", 100000+g.rnd.IntN(900000)))
			a.PutStr("url.scheme", "http")
			a.PutStr("server.address", svc+".shop.svc")
			a.PutInt("server.port", 8080)
			a.PutStr("network.protocol.version", "1.1")
			a.PutStr("user_agent.original", "Go-http-client/1.1")
			a.PutStr("customer.id", fmt.Sprintf("c-%05d", g.rnd.IntN(20000)))
			if g.isRare() {
				a.PutStr(RareTagKey, RareTagValue)
			}
			if g.rnd.IntN(20) == 0 {
				ev := sp.Events().AppendEmpty()
				ev.SetName("retry")
				ev.SetTimestamp(pcommon.NewTimestampFromTime(s.Add(d / 2)))
				ev.Attributes().PutInt("attempt", 2)
			}
		}
	}
	return td, ids
}

// Logs returns n log records of one service around now; when traceIDs is
// not empty the records carry those trace ids in turn.
func (g *Generator) Logs(n int, now time.Time, traceIDs []pcommon.TraceID) plog.Logs {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	svc := g.services[g.rnd.IntN(len(g.services))]
	rl.Resource().Attributes().PutStr("service.name", svc)
	rl.Resource().Attributes().PutStr("host.name", "node-7")
	sl := rl.ScopeLogs().AppendEmpty()
	sl.Scope().SetName("log/slog")
	recs := sl.LogRecords()
	recs.EnsureCapacity(n)
	for i := range n {
		g.seq++
		r := recs.AppendEmpty()
		ts := now.Add(-time.Duration(g.rnd.IntN(g.spreadMillis(1000))) * time.Millisecond)
		r.SetTimestamp(pcommon.NewTimestampFromTime(ts))
		r.SetObservedTimestamp(pcommon.NewTimestampFromTime(now))
		sev := plog.SeverityNumberInfo
		if g.rnd.IntN(10) == 0 {
			sev = plog.SeverityNumberError
		}
		r.SetSeverityNumber(sev)
		r.SetSeverityText(sev.String())
		msg := messages[g.rnd.IntN(len(messages))]
		if g.isRare() {
			msg = RareLogMessage
		}
		r.Body().SetStr(fmt.Sprintf("%s id=%d", msg, g.seq))
		if len(traceIDs) > 0 {
			r.SetTraceID(traceIDs[i%len(traceIDs)])
			r.SetSpanID(g.spanID())
		}
		a := r.Attributes()
		a.PutStr("code.function", "handleOrder")
		a.PutInt("order.items", int64(1+g.rnd.IntN(9)))
		a.PutStr("customer.id", fmt.Sprintf("c-%05d", g.rnd.IntN(20000)))
	}
	return ld
}

// WriteRequest returns a remote_write request with nSeries series of
// metric name, each with one sample at ts, labelled with extra.
func (g *Generator) WriteRequest(name string, nSeries int, ts time.Time, extra ...prompb.Label) *prompb.WriteRequest {
	req := &prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, 0, nSeries)}
	ms := ts.UnixMilli()
	for i := range nSeries {
		lbls := []prompb.Label{
			{Name: "__name__", Value: name},
			{Name: "instance", Value: fmt.Sprintf("host-%d:9100", i%50)},
			{Name: "job", Value: "node"},
			{Name: "series", Value: fmt.Sprint(i)},
		}
		lbls = append(lbls, extra...)
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
			Labels:  lbls,
			Samples: []prompb.Sample{{Value: g.rnd.Float64() * 100, Timestamp: ms}},
		})
	}
	return req
}
