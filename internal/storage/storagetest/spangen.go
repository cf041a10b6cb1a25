package storagetest

import (
	"fmt"
	"math/rand/v2"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// SpanGen produces realistic spans for benchmarks and crash tests, the same
// for every backend so that their numbers compare:
// traces of a few spans from a handful of services, about ten attributes
// each (HTTP server/client, RPC, DB), ids and user ids that vary, rare
// exception events and errors.
type SpanGen struct {
	rng *rand.Rand
	// At is the start of the next trace; it advances as traces are made.
	At   time.Time
	seq  uint64
	svcs []string
}

// NewSpanGen starts a generator at a time; the same seed gives the same
// data.
func NewSpanGen(seed uint64, at time.Time) *SpanGen {
	return &SpanGen{
		rng:  rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		At:   at,
		svcs: []string{"checkout", "payments", "frontend", "inventory", "users"},
	}
}

var (
	genRoutes  = []string{"/api/v1/orders/{id}", "/api/v1/users/{id}", "/api/v1/cart", "/healthz", "/api/v1/items/{id}/stock"}
	genMethods = []string{"GET", "GET", "GET", "POST", "PUT", "DELETE"}
	genPeers   = []string{"db-1.internal", "db-2.internal", "cache-1.internal", "queue-1.internal"}
	genRPC     = []string{"GetOrder", "ListItems", "Charge", "Reserve", "Lookup"}
)

func (g *SpanGen) traceID() pcommon.TraceID {
	var id pcommon.TraceID
	for i := range id {
		id[i] = byte(g.rng.Uint32())
	}
	return id
}

func (g *SpanGen) spanID() pcommon.SpanID {
	var id pcommon.SpanID
	for i := range id {
		id[i] = byte(g.rng.Uint32())
	}
	return id
}

// traces returns about n spans, grouped into traces of 1-15 spans, one
// ResourceSpans per service as an SDK exporter batch would.
func (g *SpanGen) Traces(n int) ptrace.Traces {
	td := ptrace.NewTraces()
	bySvc := map[string]ptrace.SpanSlice{}
	for _, svc := range g.svcs {
		rs := td.ResourceSpans().AppendEmpty()
		ra := rs.Resource().Attributes()
		ra.PutStr("service.name", svc)
		ra.PutStr("service.version", "1.4.2")
		ra.PutStr("host.name", "node-"+svc+"-7f9c")
		ra.PutStr("telemetry.sdk.language", "go")
		ra.PutStr("telemetry.sdk.name", "opentelemetry")
		ra.PutStr("telemetry.sdk.version", "1.38.0")
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName("go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp")
		ss.Scope().SetVersion("0.63.0")
		bySvc[svc] = ss.Spans()
	}
	for made := 0; made < n; {
		tid := g.traceID()
		size := min(1+g.rng.IntN(15), n-made)
		g.At = g.At.Add(time.Duration(g.rng.IntN(4000)) * time.Microsecond)
		var root pcommon.SpanID
		for i := range size {
			svc := g.svcs[g.rng.IntN(len(g.svcs))]
			sp := bySvc[svc].AppendEmpty()
			g.fill(sp, tid, root, i)
			if i == 0 {
				root = sp.SpanID()
			}
		}
		made += size
	}
	return td
}

func (g *SpanGen) fill(sp ptrace.Span, tid pcommon.TraceID, parent pcommon.SpanID, i int) {
	g.seq++
	sp.SetTraceID(tid)
	sp.SetSpanID(g.spanID())
	sp.SetParentSpanID(parent)
	sp.SetFlags(1)
	start := g.At.Add(time.Duration(i*g.rng.IntN(300)) * time.Microsecond)
	dur := time.Duration(g.rng.ExpFloat64()*3e6) + 50*time.Microsecond
	sp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
	sp.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(dur)))
	a := sp.Attributes()
	route := genRoutes[g.rng.IntN(len(genRoutes))]
	if i == 0 {
		sp.SetKind(ptrace.SpanKindServer)
		method := genMethods[g.rng.IntN(len(genMethods))]
		sp.SetName(method + " " + route)
		a.PutStr("http.request.method", method)
		a.PutStr("http.route", route)
		status := int64(200)
		if g.rng.IntN(30) == 0 {
			status = 500
			sp.Status().SetCode(ptrace.StatusCodeError)
		}
		a.PutInt("http.response.status_code", status)
		a.PutStr("url.path", fmt.Sprintf("/api/v1/orders/%d", 100000+g.rng.IntN(900000)))
		a.PutStr("url.scheme", "https")
		a.PutStr("user.id", fmt.Sprintf("u-%d", g.rng.IntN(50000)))
		a.PutStr("client.address", fmt.Sprintf("10.0.%d.%d", g.rng.IntN(256), g.rng.IntN(256)))
		a.PutStr("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36")
		a.PutStr("server.address", "api.example.com")
		a.PutInt("server.port", 443)
	} else {
		sp.SetKind(ptrace.SpanKindClient)
		rpc := genRPC[g.rng.IntN(len(genRPC))]
		sp.SetName("grpc." + rpc)
		a.PutStr("rpc.system", "grpc")
		a.PutStr("rpc.service", "vigil.demo.v1.Service")
		a.PutStr("rpc.method", rpc)
		a.PutInt("rpc.grpc.status_code", 0)
		a.PutStr("net.peer.name", genPeers[g.rng.IntN(len(genPeers))])
		a.PutInt("net.peer.port", 5432)
		a.PutStr("user.id", fmt.Sprintf("u-%d", g.rng.IntN(50000)))
		a.PutStr("db.statement", "SELECT * FROM orders WHERE id = ?")
		a.PutInt("db.rows", int64(g.rng.IntN(100)))
		a.PutDouble("sampling.ratio", 1.0)
	}
	if g.rng.IntN(20) == 0 {
		ev := sp.Events().AppendEmpty()
		ev.SetName("exception")
		ev.SetTimestamp(pcommon.NewTimestampFromTime(start.Add(dur / 2)))
		ev.Attributes().PutStr("exception.type", "context.DeadlineExceeded")
		ev.Attributes().PutStr("exception.message", "context deadline exceeded")
		sp.Status().SetCode(ptrace.StatusCodeError)
		sp.Status().SetMessage("deadline exceeded")
	}
}

// logs returns n log records spread over the services.
func (g *SpanGen) Logs(n int) plog.Logs {
	ld := plog.NewLogs()
	bySvc := map[string]plog.LogRecordSlice{}
	for _, svc := range g.svcs {
		rl := ld.ResourceLogs().AppendEmpty()
		rl.Resource().Attributes().PutStr("service.name", svc)
		rl.Resource().Attributes().PutStr("host.name", "node-"+svc+"-7f9c")
		sl := rl.ScopeLogs().AppendEmpty()
		sl.Scope().SetName("log/slog")
		bySvc[svc] = sl.LogRecords()
	}
	for range n {
		g.At = g.At.Add(time.Duration(g.rng.IntN(400)) * time.Microsecond)
		lr := bySvc[g.svcs[g.rng.IntN(len(g.svcs))]].AppendEmpty()
		lr.SetTimestamp(pcommon.NewTimestampFromTime(g.At))
		lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(g.At.Add(time.Millisecond)))
		lr.SetTraceID(g.traceID())
		lr.SetSpanID(g.spanID())
		lr.SetFlags(1)
		if g.rng.IntN(10) == 0 {
			lr.SetSeverityNumber(plog.SeverityNumberError)
			lr.SetSeverityText("ERROR")
			lr.Body().SetStr(fmt.Sprintf("payment failed for order %d: card declined", g.rng.IntN(1000000)))
		} else {
			lr.SetSeverityNumber(plog.SeverityNumberInfo)
			lr.SetSeverityText("INFO")
			lr.Body().SetStr(fmt.Sprintf("handled request path=/api/v1/orders/%d status=200 duration=%dms", g.rng.IntN(1000000), g.rng.IntN(500)))
		}
		lr.Attributes().PutStr("user.id", fmt.Sprintf("u-%d", g.rng.IntN(50000)))
		lr.Attributes().PutStr("http.route", genRoutes[g.rng.IntN(len(genRoutes))])
		lr.Attributes().PutInt("thread.id", int64(g.rng.IntN(64)))
	}
	return ld
}
