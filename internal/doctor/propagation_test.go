package doctor

import (
	"cmp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/memory"
)

func TestPropagationCheck(t *testing.T) {
	demo := shopOptions{rps: 5, periodic: true}
	with := func(o shopOptions, f func(*shopOptions)) shopOptions { f(&o); return o }
	tests := []struct {
		scenario string
		spans    []storage.SpanShape
		limit    int
		want     []string
		// text is found in the finding's summary, cause or fix.
		text []string
	}{
		{
			scenario: "demo drop-context: gateway calls catalog with a plain http.Client",
			spans:    shopSpans(with(demo, func(o *shopOptions) { o.dropContext = map[string]bool{"gateway>catalog": true} })),
			want:     []string{"broken_propagation gateway → catalog"},
			text:     []string{"most often from gateway's GET /products/{id}", "svc.HTTPClient()", "no client span"},
		},
		{
			scenario: "drop-context under random load",
			spans:    shopSpans(shopOptions{seed: 1, rps: 40, dropContext: map[string]bool{"gateway>catalog": true}}),
			want:     []string{"broken_propagation gateway → catalog"},
		},
		{
			scenario: "drop-context while slow payments keep many requests overlapping",
			spans:    shopSpans(shopOptions{seed: 2, rps: 20, slowPayments: true, dropContext: map[string]bool{"gateway>catalog": true}}),
			want:     []string{"broken_propagation gateway → catalog"},
		},
		{
			scenario: "instrumented client but no propagator",
			spans:    shopSpans(with(demo, func(o *shopOptions) { o.noPropagator = map[string]bool{"gateway>catalog": true} })),
			want:     []string{"broken_propagation gateway → catalog"},
			text:     []string{"its client spans are there", "SetTextMapPropagator"},
		},
		{
			scenario: "gRPC call without propagator",
			spans:    shopSpans(shopOptions{seed: 3, rps: 20, noPropagator: map[string]bool{"orders>payments": true}}),
			want:     []string{"broken_propagation orders → payments"},
			text:     []string{"GRPCServerOptions", "most often from orders's POST /orders"},
		},
		{
			scenario: "gRPC call through an uninstrumented connection",
			spans:    shopSpans(shopOptions{seed: 4, rps: 20, dropContext: map[string]bool{"orders>payments": true}}),
			want:     []string{"broken_propagation orders → payments"},
			text:     []string{"GRPCDialOptions"},
		},
		{
			scenario: "gRPC call through an uninstrumented connection while slow payments overlap",
			spans:    shopSpans(shopOptions{seed: 21, rps: 60, slowPayments: true, dropContext: map[string]bool{"orders>payments": true}}),
			want:     []string{"broken_propagation orders → payments"},
		},
		{
			scenario: "callee samples on its own and drops half the calls",
			spans:    shopSpans(shopOptions{seed: 5, rps: 10, calleeDrops: map[string]float64{"gateway>catalog": 0.5}}),
			want:     []string{"broken_propagation gateway → catalog"},
			text:     []string{"have no server span of catalog under them", "ParentBased"},
		},
		{
			scenario: "caller samples out traces its callees keep",
			spans:    shopSpans(shopOptions{seed: 6, rps: 10, unexported: map[string]float64{"gateway": 0.5}}),
			want:     []string{"broken_propagation ? → catalog", "broken_propagation ? → orders"},
			text:     []string{"no span of their caller arrived"},
		},
		{
			scenario: "a service between two others exports nothing",
			spans:    shopSpans(shopOptions{seed: 7, rps: 10, unexported: map[string]float64{"orders": 1}}),
			want:     []string{"broken_propagation gateway → payments"},
		},
		{
			scenario: "handler spans never ended on some requests",
			spans:    shopSpans(shopOptions{seed: 8, rps: 10, unended: map[string]float64{"orders": 0.3}}),
			want:     []string{"broken_propagation orders"},
			text:     []string{"defer span.End()"},
		},
		{scenario: "healthy demo", spans: shopSpans(demo)},
		// Clocks minutes apart: every trace holds the callee's spans, stamped
		// minutes away from the calls (span_timing names the offset).
		{scenario: "catalog's clock runs 3 minutes behind", spans: shopSpans(shopOptions{seed: 22, rps: 10, skew: map[string]time.Duration{"catalog": -3 * time.Minute}})},
		{scenario: "catalog's clock runs 2 minutes ahead", spans: shopSpans(shopOptions{seed: 23, rps: 10, skew: map[string]time.Duration{"catalog": 2 * time.Minute}})},
		{scenario: "orders' clock runs 90s behind, payments' 4 minutes ahead", spans: shopSpans(shopOptions{seed: 24, rps: 10, skew: map[string]time.Duration{"orders": -90 * time.Second, "payments": 4 * time.Minute}})},
		{
			scenario: "payments' clock runs 4 minutes behind while gateway drops context to catalog",
			spans:    shopSpans(shopOptions{seed: 25, rps: 10, skew: map[string]time.Duration{"payments": -4 * time.Minute}, dropContext: map[string]bool{"gateway>catalog": true}}),
			want:     []string{"broken_propagation gateway → catalog"},
		},
		{
			scenario: "catalog's clock runs 3 minutes behind and it samples on its own",
			spans:    shopSpans(shopOptions{seed: 26, rps: 10, skew: map[string]time.Duration{"catalog": -3 * time.Minute}, calleeDrops: map[string]float64{"gateway>catalog": 0.5}}),
			want:     []string{"broken_propagation gateway → catalog"},
			text:     []string{"have no server span of catalog under them", "ParentBased"},
		},
		{scenario: "healthy heavy concurrency", spans: shopSpans(shopOptions{seed: 9, rps: 80, slowPayments: true})},
		{scenario: "healthy periodic load with slow payments", spans: shopSpans(shopOptions{seed: 10, rps: 40, periodic: true, slowPayments: true})},
		{scenario: "healthy heavy concurrency since a minute ago", spans: shopSpans(shopOptions{seed: 18, rps: 80, slowPayments: true, since: time.Minute})},
		{scenario: "healthy heavy concurrency in bursts", spans: shopSpans(shopOptions{seed: 19, rps: 80, slowPayments: true, bursts: true})},
		{
			scenario: "demo drop-context since a minute ago",
			spans:    shopSpans(with(demo, func(o *shopOptions) { o.since = time.Minute; o.dropContext = map[string]bool{"gateway>catalog": true} })),
			want:     []string{"broken_propagation gateway → catalog"},
		},
		{
			scenario: "drop-context deployed two minutes ago",
			spans:    deployedAt(shopOptions{seed: 27, rps: 10}, testNow.Add(-2*time.Minute), func(o *shopOptions) { o.dropContext = map[string]bool{"gateway>catalog": true} }),
			want:     []string{"broken_propagation gateway → catalog"},
		},
		{
			// Before, nothing showed the call: no client span, no root of
			// catalog in gateway's spans.
			scenario: "catalog traced since two minutes ago, gateway's client never was",
			spans:    notBefore(shopSpans(shopOptions{seed: 28, rps: 10, dropContext: map[string]bool{"gateway>catalog": true}}), "catalog", testNow.Add(-2*time.Minute)),
			want:     []string{"broken_propagation gateway → catalog"},
		},
		{
			scenario: "drop-context at one request every five seconds",
			spans:    shopSpans(shopOptions{seed: 20, rps: 0.2, dropContext: map[string]bool{"gateway>catalog": true}}),
			want:     []string{"broken_propagation gateway → catalog"},
		},
		{scenario: "calls to an external API and a database", spans: shopSpans(shopOptions{seed: 11, rps: 20, externalCalls: true})},
		{scenario: "a few calls fail before the callee starts a span", spans: shopSpans(shopOptions{seed: 12, rps: 20, failedCalls: 0.03})},
		{scenario: "messaging consumers start linked traces", spans: withConsumers(shopSpans(shopOptions{seed: 13, rps: 20}))},
		{scenario: "long-running job whose root span is still running", spans: withBatchJob(shopSpans(shopOptions{seed: 14, rps: 5}))},
		{scenario: "long requests still running at the window's end", spans: withLongRequests(shopSpans(shopOptions{seed: 15, rps: 5}))},
		{scenario: "span limit cuts the window", spans: shopSpans(shopOptions{seed: 16, rps: 20}), limit: 30000},
		{
			scenario: "span limit cuts the window, drop-context",
			spans:    shopSpans(shopOptions{seed: 17, rps: 20, dropContext: map[string]bool{"gateway>catalog": true}}),
			limit:    30000,
			want:     []string{"broken_propagation gateway → catalog"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			c := PropagationCheck{Spans: &fakeDiagnosis{spans: tt.spans}, Limit: tt.limit, Now: func() time.Time { return testNow }}
			got, err := c.Run(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			expectFindings(t, got, tt.want...)
			for _, f := range got {
				checkTraceFinding(t, f)
				// Each of these faults leaves more than time nesting behind:
				// a client span, or new traces that track every call.
				if f.Severity != Warning {
					t.Errorf("%s: severity %s, want warning", f.Subject, f.Severity)
				}
				t.Logf("%s: %s\n  values %v\n  cause %s\n  fix %s", f.Subject, f.Evidence.Summary, f.Evidence.Values, f.Cause, f.Fix)
			}
			if len(got) > 0 {
				all := got[0].Evidence.Summary + " " + got[0].Cause + " " + got[0].Fix
				for _, want := range tt.text {
					if !strings.Contains(all, want) {
						t.Errorf("finding lacks %q:\n%s", want, all)
					}
				}
			}
		})
	}
}

// checkTraceFinding holds a trace finding to the house rules.
func checkTraceFinding(t *testing.T, f Finding) {
	t.Helper()
	if (f.Severity != Warning && f.Severity != Info) || f.Cause == "" || f.Fix == "" || f.Evidence.Summary == "" || f.Evidence.Window == "" || len(f.Evidence.Values) == 0 {
		t.Errorf("incomplete finding %+v", f)
	}
	if len(f.Evidence.Samples) == 0 || len(f.Evidence.Samples) > MaxSamples {
		t.Errorf("%s: %d samples, want 1 to %d", f.Subject, len(f.Evidence.Samples), MaxSamples)
	}
	for _, s := range f.Evidence.Samples {
		if len(s) != 32 {
			t.Errorf("%s: sample %q is not a hex trace id", f.Subject, s)
		}
	}
}

// TestPropagationSamplesBothSides pins that a new-trace hop shows the
// downstream's new trace and the upstream trace it belongs in.
func TestPropagationSamplesBothSides(t *testing.T) {
	spans := shopSpans(shopOptions{rps: 5, periodic: true, dropContext: map[string]bool{"gateway>catalog": true}})
	got, err := PropagationCheck{Spans: &fakeDiagnosis{spans: spans}, Now: func() time.Time { return testNow }}.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	expectFindings(t, got, "broken_propagation gateway → catalog")
	if len(got) != 1 {
		t.FailNow()
	}
	services := map[string]bool{}
	for _, s := range got[0].Evidence.Samples {
		for _, sp := range spans {
			if sp.TraceID.String() == s && sp.ParentSpanID.IsEmpty() {
				services[sp.Service] = true
			}
		}
	}
	if !services["gateway"] || !services["catalog"] {
		t.Errorf("samples %v are rooted in %v, want traces of gateway and catalog", got[0].Evidence.Samples, services)
	}
	if v := got[0].Evidence.Values; v["ratio"] < 0.9 || v["expected_by_chance"] > 10 {
		t.Errorf("values %v: want every catalog span broken, few by chance", v)
	}
}

func TestPropagationLimitTooSmall(t *testing.T) {
	spans := shopSpans(shopOptions{rps: 20})
	_, err := PropagationCheck{Spans: &fakeDiagnosis{spans: spans}, Limit: 100, Now: func() time.Time { return testNow }}.Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), "raise the check's span limit") {
		t.Fatalf("err %v, want the limit named", err)
	}
}

// deployedAt simulates the shop with o until at, and with fault applied to
// o from then on, as a deployment that brings a fault does.
func deployedAt(o shopOptions, at time.Time, fault func(*shopOptions)) []storage.SpanShape {
	g := newSpanGen(o)
	g.run(testNow.Add(-cmp.Or(o.since, 7*time.Minute)), at)
	fault(&g.o)
	g.run(at, testNow)
	return g.spans
}

// notBefore drops svc's spans that started before t, as if it exported
// nothing until then.
func notBefore(spans []storage.SpanShape, svc string, t time.Time) []storage.SpanShape {
	return slices.DeleteFunc(spans, func(s storage.SpanShape) bool { return s.Service == svc && s.Start < t.UnixNano() })
}

// withConsumers adds a shipping service that consumes orders' messages
// right away, each in a new trace (linked to the producer, as the messaging
// conventions have it).
func withConsumers(spans []storage.SpanShape) []storage.SpanShape {
	g := newSpanGen(shopOptions{seed: 99})
	for _, s := range slices.Clone(spans) {
		if s.Service != "orders" || s.Kind != ptrace.SpanKindServer {
			continue
		}
		start := time.Unix(0, s.End).Add(-200 * time.Microsecond)
		g.span(s.TraceID, s.SpanID, "orders", "orders publish", ptrace.SpanKindProducer, start, start.Add(100*time.Microsecond), "kafka:9092", true)
		g.span(g.traceID(), pcommon.SpanID{}, "shipping", "orders process", ptrace.SpanKindConsumer, start.Add(20*time.Microsecond), start.Add(90*time.Microsecond), "", true)
	}
	return append(spans, g.spans...)
}

// withBatchJob adds a worker whose export job started ten minutes ago and
// still runs (so its root span has not arrived), calling catalog every two
// seconds.
func withBatchJob(spans []storage.SpanShape) []storage.SpanShape {
	g := newSpanGen(shopOptions{seed: 98})
	root := ctx{trace: g.traceID(), span: g.spanID(), emit: true}
	for t := testNow.Add(-10 * time.Minute); t.Before(testNow); t = t.Add(2 * time.Second) {
		g.call(root, "worker", "catalog", "GET", "GET /products", t, g.work(time.Millisecond, 3*time.Millisecond))
	}
	return append(spans, g.spans...)
}

// withLongRequests adds exports that take 50s: near the window's end their
// gateway span has not arrived yet while catalog's child has.
func withLongRequests(spans []storage.SpanShape) []storage.SpanShape {
	g := newSpanGen(shopOptions{seed: 97})
	for t := testNow.Add(-3 * time.Minute); t.Before(testNow); t = t.Add(5 * time.Second) {
		g.serve(ctx{trace: g.traceID(), emit: true}, "gateway", "GET /export", ptrace.SpanKindServer, t, func(c ctx, t time.Time) time.Time {
			return g.call(c, "gateway", "catalog", "GET", "GET /products", t, g.work(time.Second, 2*time.Second)).Add(48 * time.Second)
		})
	}
	return append(spans, g.spans...)
}

// TestTraceChecksReadTheStore runs the trace checks over a real store, so
// that what they read (kinds, peers from span attributes, log trace ids)
// is what a backend gives them.
func TestTraceChecksReadTheStore(t *testing.T) {
	st := memory.New()
	defer st.Close()
	spans := shopSpans(shopOptions{rps: 5, periodic: true, dropContext: map[string]bool{"gateway>catalog": true}, calleeDrops: map[string]float64{"orders>payments": 0.5}})
	td := ptrace.NewTraces()
	bySvc := map[string]ptrace.SpanSlice{}
	for _, s := range spans {
		ss, ok := bySvc[s.Service]
		if !ok {
			rs := td.ResourceSpans().AppendEmpty()
			rs.Resource().Attributes().PutStr("service.name", s.Service)
			ss = rs.ScopeSpans().AppendEmpty().Spans()
			bySvc[s.Service] = ss
		}
		sp := ss.AppendEmpty()
		sp.SetTraceID(s.TraceID)
		sp.SetSpanID(s.SpanID)
		sp.SetParentSpanID(s.ParentSpanID)
		sp.SetName(s.Name)
		sp.SetKind(s.Kind)
		sp.SetStartTimestamp(pcommon.Timestamp(s.Start))
		sp.SetEndTimestamp(pcommon.Timestamp(s.End))
		if host, port, ok := strings.Cut(s.Peer, ":"); ok {
			sp.Attributes().PutStr("server.address", host)
			sp.Attributes().PutStr("server.port", port)
		}
	}
	if err := st.WriteTraces(t.Context(), td); err != nil {
		t.Fatal(err)
	}
	// orders logs the trace id of every order, and of as many again whose
	// whole trace was sampled out.
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "orders")
	recs := rl.ScopeLogs().AppendEmpty().LogRecords()
	for i, s := range spans {
		if s.Service == "orders" && s.Kind == ptrace.SpanKindServer {
			for _, id := range []pcommon.TraceID{s.TraceID, {0xdd, byte(i >> 16), byte(i >> 8), byte(i)}} {
				r := recs.AppendEmpty()
				r.SetTimestamp(pcommon.Timestamp(s.Start))
				r.SetTraceID(id)
				r.Body().SetStr("order placed")
			}
		}
	}
	if err := st.WriteLogs(t.Context(), ld); err != nil {
		t.Fatal(err)
	}
	now := func() time.Time { return testNow }
	got, err := PropagationCheck{Spans: st, Now: now}.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	expectFindings(t, got, "broken_propagation gateway → catalog", "broken_propagation orders → payments")
	got, err = TraceLogsCheck{Coverage: st, Now: now}.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	expectFindings(t, got, "trace_logs_mismatch orders")
	if len(got) != 1 {
		return
	}
	if r := got[0].Evidence.Values["ratio"]; r < 0.45 || r > 0.55 {
		t.Errorf("ratio %v, want half of the logged traces missing", r)
	}
}
