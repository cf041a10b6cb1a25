package doctor

import (
	"cmp"
	"context"
	"encoding/binary"
	"maps"
	"math/rand/v2"
	"slices"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage"
)

// fakeDiagnosis serves spans and log coverage from slices.
type fakeDiagnosis struct {
	spans    []storage.SpanShape
	coverage []storage.ServiceLogTraces
	logQuery storage.LogTraceQuery
}

var _ storage.DiagnosisReader = (*fakeDiagnosis)(nil)

func (f *fakeDiagnosis) SpanShapes(_ context.Context, q storage.SpanShapeQuery) ([]storage.SpanShape, error) {
	var out []storage.SpanShape
	for _, s := range f.spans {
		if s.Start >= q.Start.UnixNano() && s.Start < q.End.UnixNano() {
			out = append(out, s)
		}
	}
	slices.SortStableFunc(out, func(a, b storage.SpanShape) int { return cmp.Compare(a.Start, b.Start) })
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out, nil
}

func (f *fakeDiagnosis) LogTraceCoverage(_ context.Context, q storage.LogTraceQuery) ([]storage.ServiceLogTraces, error) {
	f.logQuery = q
	return f.coverage, nil
}

// testNow is the checks' "now" in the span scenarios.
var testNow = time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)

// shopOptions describe a simulated shop like the demo's: gateway (the
// entry point, called by an uninstrumented load generator) forwards product
// reads to catalog and places orders with orders, which charges payments
// over gRPC and writes to an uninstrumented database.
type shopOptions struct {
	seed int64
	// rps is the request rate; periodic sends them on a ticker like the
	// demo's load generator instead of at random (Poisson) times.
	rps      float64
	periodic bool
	// slowPayments makes charges take 300-800ms, so that many requests
	// overlap.
	slowPayments bool
	// dropContext: the hops "from>to" are called with a plain client (no
	// client span, the callee starts a new trace); noPropagator: with an
	// instrumented client that injects nothing (a client span, the callee
	// starts a new trace).
	dropContext, noPropagator map[string]bool
	// calleeDrops is, per hop "from>to", the share of calls whose callee
	// keeps none of its spans (its own sampling decision).
	calleeDrops map[string]float64
	// unexported is, per service, the share of traces of which it exports
	// nothing (it samples them out, or does not export at all at 1).
	unexported map[string]float64
	// unended is, per service, the share of its server spans that are never
	// ended, hence never exported, while their children are.
	unended map[string]float64
	// failedCalls is the share of gateway's calls to catalog that fail
	// before catalog starts a span (connection refused).
	failedCalls float64
	// late is, per service, how long after they end its spans arrive (a
	// batch exported every few minutes): those ending later than that
	// before testNow are not stored yet.
	late map[string]time.Duration
	// queueDrops is, per service, the share of its spans its exporter's
	// queue drops, each on its own (a full queue drops spans, not traces).
	queueDrops map[string]float64
	// skew shifts the clocks of services.
	skew map[string]time.Duration
	// noEnd and tooLong make the spans of an operation ("service name")
	// come without an end, or last hours.
	noEnd, tooLong map[string]bool
	// externalCalls adds gateway's calls to an external API.
	externalCalls bool
	// since is how long before testNow the traffic started (7m if 0);
	// bursts makes it stop every other minute.
	since  time.Duration
	bursts bool
}

// spanGen builds span fixtures.
type spanGen struct {
	o     shopOptions
	rng   *rand.Rand
	next  uint64
	spans []storage.SpanShape
	// dropped holds, per trace, the services that export nothing of it.
	dropped map[pcommon.TraceID]map[string]bool
}

func newSpanGen(o shopOptions) *spanGen {
	return &spanGen{o: o, rng: rand.New(rand.NewPCG(uint64(o.seed), 7)), dropped: map[pcommon.TraceID]map[string]bool{}}
}

func (g *spanGen) traceID() pcommon.TraceID {
	g.next++
	var id pcommon.TraceID
	binary.BigEndian.PutUint64(id[8:], g.next)
	// Generators with other seeds add to the same fixture: their ids must
	// not collide.
	binary.BigEndian.PutUint64(id[:8], uint64(g.o.seed))
	id[0] = 0xa1
	return id
}

func (g *spanGen) spanID() pcommon.SpanID {
	g.next++
	var id pcommon.SpanID
	binary.BigEndian.PutUint64(id[:], g.next|uint64(g.o.seed)<<48)
	return id
}

// between returns a random duration in [lo, hi).
func (g *spanGen) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(g.rng.Int64N(int64(hi-lo)))
}

// add records a span unless its service exports nothing of its trace or
// it has not ended by testNow (an SDK exports a span when it ends); it
// applies the service's clock skew and the operation's timing faults.
func (g *spanGen) add(s storage.SpanShape, emit bool) {
	if !emit || g.dropped[s.TraceID][s.Service] || s.End > testNow.Add(-g.o.late[s.Service]).UnixNano() {
		return
	}
	if p := g.o.queueDrops[s.Service]; p > 0 && g.rng.Float64() < p {
		return
	}
	if d := g.o.skew[s.Service]; d != 0 {
		s.Start += int64(d)
		s.End += int64(d)
	}
	switch op := s.Service + " " + s.Name; {
	case g.o.noEnd[op]:
		s.End = 0
	case g.o.tooLong[op]:
		s.End = s.Start + int64(3*time.Hour)
	}
	g.spans = append(g.spans, s)
}

// span adds a span of [start, end) and returns it.
func (g *spanGen) span(trace pcommon.TraceID, parent pcommon.SpanID, svc, name string, kind ptrace.SpanKind, start, end time.Time, peer string, emit bool) storage.SpanShape {
	s := storage.SpanShape{TraceID: trace, SpanID: g.spanID(), ParentSpanID: parent, Service: svc, Name: name, Kind: kind, Start: start.UnixNano(), End: end.UnixNano(), Peer: peer}
	g.add(s, emit)
	return s
}

func peerOf(svc string) string { return svc + ":8080" }

// ctx is where a handler runs: its trace and span, and whether its spans
// are exported.
type ctx struct {
	trace pcommon.TraceID
	span  pcommon.SpanID
	emit  bool
}

// serve runs a server span of svc from start; body does the handler's
// work from the given time and returns when it is done.
func (g *spanGen) serve(c ctx, svc, name string, kind ptrace.SpanKind, start time.Time, body func(c ctx, t time.Time) time.Time) time.Time {
	id := g.spanID()
	inner := ctx{c.trace, id, c.emit}
	end := body(inner, start.Add(g.between(100*time.Microsecond, 500*time.Microsecond))).Add(g.between(50*time.Microsecond, 300*time.Microsecond))
	s := storage.SpanShape{TraceID: c.trace, SpanID: id, ParentSpanID: c.span, Service: svc, Name: name, Kind: kind, Start: start.UnixNano(), End: end.UnixNano(), Peer: peerOf(svc)}
	if g.rng.Float64() < g.o.unended[svc] {
		return end // never ended: its children are exported, it is not
	}
	g.add(s, c.emit)
	return end
}

// call makes from's call to to's operation at t and returns when the
// answer is back.
func (g *spanGen) call(c ctx, from, to, clientName, serverName string, t time.Time, body func(c ctx, t time.Time) time.Time) time.Time {
	hop := from + ">" + to
	lat := g.between(100*time.Microsecond, 400*time.Microsecond)
	clientID := g.spanID()
	callee := ctx{c.trace, clientID, c.emit}
	switch {
	case g.o.dropContext[hop], g.o.noPropagator[hop]:
		callee = ctx{g.traceID(), pcommon.SpanID{}, true}
	case g.rng.Float64() < g.o.calleeDrops[hop]:
		callee.emit = false
	}
	var end time.Time
	if from == "gateway" && to == "catalog" && g.rng.Float64() < g.o.failedCalls {
		end = t.Add(lat)
	} else {
		end = g.serve(callee, to, serverName, ptrace.SpanKindServer, t.Add(lat), body).Add(lat)
	}
	if !g.o.dropContext[hop] {
		g.add(storage.SpanShape{TraceID: c.trace, SpanID: clientID, ParentSpanID: c.span, Service: from, Name: clientName, Kind: ptrace.SpanKindClient, Start: t.UnixNano(), End: end.UnixNano(), Peer: peerOf(to)}, c.emit)
	}
	return end
}

func (g *spanGen) work(lo, hi time.Duration) func(ctx, time.Time) time.Time {
	return func(_ ctx, t time.Time) time.Time { return t.Add(g.between(lo, hi)) }
}

// request runs the i-th request of the load mix at t: a listing, two
// product reads and an order in every four.
func (g *spanGen) request(i int, t time.Time) {
	root := ctx{trace: g.traceID(), emit: true}
	for _, svc := range slices.Sorted(maps.Keys(g.o.unexported)) {
		if g.rng.Float64() < g.o.unexported[svc] {
			if g.dropped[root.trace] == nil {
				g.dropped[root.trace] = map[string]bool{}
			}
			g.dropped[root.trace][svc] = true
		}
	}
	catalog := g.work(300*time.Microsecond, 3*time.Millisecond)
	switch i % 4 {
	case 0:
		g.serve(root, "gateway", "GET /products", ptrace.SpanKindServer, t, func(c ctx, t time.Time) time.Time {
			return g.call(c, "gateway", "catalog", "GET", "GET /products", t, catalog)
		})
	case 1, 2:
		g.serve(root, "gateway", "GET /products/{id}", ptrace.SpanKindServer, t, func(c ctx, t time.Time) time.Time {
			t = g.call(c, "gateway", "catalog", "GET", "GET /products/{id}", t, catalog)
			if g.o.externalCalls {
				end := t.Add(g.between(20*time.Millisecond, 80*time.Millisecond))
				g.span(c.trace, c.span, "gateway", "GET", ptrace.SpanKindClient, t, end, "api.reviews.example.com:443", c.emit)
				t = end
			}
			return t
		})
	case 3:
		g.serve(root, "gateway", "POST /orders", ptrace.SpanKindServer, t, func(c ctx, t time.Time) time.Time {
			t = g.call(c, "gateway", "catalog", "GET", "GET /products/{id}", t, catalog)
			return g.call(c, "gateway", "orders", "POST", "POST /orders", t, func(c ctx, t time.Time) time.Time {
				end := t.Add(g.between(500*time.Microsecond, 2*time.Millisecond))
				g.span(c.trace, c.span, "orders", "validate order", ptrace.SpanKindInternal, t, end, "", c.emit)
				charge := g.work(2*time.Millisecond, 10*time.Millisecond)
				if g.o.slowPayments {
					charge = g.work(300*time.Millisecond, 800*time.Millisecond)
				}
				t = g.call(c, "orders", "payments", "payments.Payments/Charge", "payments.Payments/Charge", end, charge)
				end = t.Add(g.between(time.Millisecond, 4*time.Millisecond))
				g.span(c.trace, c.span, "orders", "INSERT orders", ptrace.SpanKindClient, t, end, "postgres:5432", c.emit)
				return end
			})
		})
	}
}

// shopSpans simulates the shop's traffic until testNow.
func shopSpans(o shopOptions) []storage.SpanShape {
	g := newSpanGen(o)
	g.run(testNow.Add(-cmp.Or(o.since, 7*time.Minute)), testNow)
	return g.spans
}

func (g *spanGen) run(from, to time.Time) {
	t := from
	for i := 0; t.Before(to); i++ {
		if g.o.bursts && t.Sub(from)/time.Minute%2 == 1 {
			t = t.Add(time.Minute).Truncate(time.Minute)
			continue
		}
		g.request(i, t)
		gap := time.Duration(float64(time.Second) / g.o.rps)
		if !g.o.periodic {
			gap = time.Duration(g.rng.ExpFloat64() * float64(gap))
		}
		t = t.Add(gap)
	}
}
