package doctor

import (
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage"
)

func TestTimingCheck(t *testing.T) {
	tests := []struct {
		scenario string
		spans    []storage.SpanShape
		want     []string
		// text is found in the first finding's summary, cause or fix.
		text []string
		// offset is the expected median offset of the first finding.
		offset time.Duration
	}{
		{
			scenario: "catalog's clock runs 2s ahead",
			spans:    shopSpans(shopOptions{seed: 1, rps: 10, skew: map[string]time.Duration{"catalog": 2 * time.Second}}),
			want:     []string{"span_timing gateway → catalog"},
			text:     []string{"catalog's clock is about 2s ahead of gateway's", "NTP"},
			offset:   2 * time.Second,
		},
		{
			scenario: "payments' clock runs 300ms behind",
			spans:    shopSpans(shopOptions{seed: 2, rps: 10, skew: map[string]time.Duration{"payments": -300 * time.Millisecond}}),
			want:     []string{"span_timing orders → payments"},
			text:     []string{"about 300ms behind orders's"},
			offset:   -300 * time.Millisecond,
		},
		{
			scenario: "catalog's clock runs 3 minutes behind",
			spans:    shopSpans(shopOptions{seed: 22, rps: 10, skew: map[string]time.Duration{"catalog": -3 * time.Minute}}),
			want:     []string{"span_timing gateway → catalog"},
			text:     []string{"catalog's clock is about 3m0s behind gateway's"},
			offset:   -3 * time.Minute,
		},
		{
			scenario: "child spans timestamped by hand start before their parent",
			spans:    shiftSpans(shopSpans(shopOptions{seed: 3, rps: 10}), "validate order", -time.Second),
			want:     []string{"span_timing orders"},
			text:     []string{"start before their parent", "trace.WithTimestamp"},
		},
		{
			scenario: "spans sent without an end",
			spans:    shopSpans(shopOptions{seed: 4, rps: 10, noEnd: map[string]bool{"orders validate order": true}}),
			want:     []string{"span_timing orders validate order"},
			text:     []string{"without an end time", "defer span.End()"},
		},
		{
			scenario: "end timestamps hours after the start",
			spans:    shopSpans(shopOptions{seed: 5, rps: 10, tooLong: map[string]bool{"payments payments.Payments/Charge": true}}),
			want:     []string{"span_timing payments payments.Payments/Charge"},
			text:     []string{"lasted more than 1h0m0s (the longest 3h0m0s)"},
		},
		{scenario: "healthy demo", spans: shopSpans(shopOptions{rps: 5, periodic: true})},
		{scenario: "healthy heavy concurrency", spans: shopSpans(shopOptions{seed: 6, rps: 60, slowPayments: true})},
		{scenario: "clocks within the tolerance", spans: shopSpans(shopOptions{seed: 7, rps: 10, skew: map[string]time.Duration{"catalog": 20 * time.Millisecond, "payments": -30 * time.Millisecond}})},
		{scenario: "consumers run after their producer ended", spans: withLateConsumers(shopSpans(shopOptions{seed: 8, rps: 10}))},
		{scenario: "servers outlive clients that gave up", spans: withTimeouts(shopSpans(shopOptions{seed: 9, rps: 10}))},
		{scenario: "goroutines outlive their handler", spans: withBackgroundWork(shopSpans(shopOptions{seed: 10, rps: 10}))},
		{scenario: "one span ends before it starts", spans: withBackwardSpan(shopSpans(shopOptions{seed: 11, rps: 10}))},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			got, err := TimingCheck{Spans: &fakeDiagnosis{spans: tt.spans}, Now: func() time.Time { return testNow }}.Run(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			expectFindings(t, got, tt.want...)
			for _, f := range got {
				checkTraceFinding(t, f)
				t.Logf("%s: %s\n  values %v\n  cause %s\n  fix %s", f.Subject, f.Evidence.Summary, f.Evidence.Values, f.Cause, f.Fix)
			}
			if len(got) == 0 {
				return
			}
			all := got[0].Evidence.Summary + " " + got[0].Cause + " " + got[0].Fix
			for _, want := range tt.text {
				if !strings.Contains(all, want) {
					t.Errorf("finding lacks %q:\n%s", want, all)
				}
			}
			if tt.offset != 0 {
				if got := time.Duration(got[0].Evidence.Values["median_offset_seconds"] * float64(time.Second)); (got - tt.offset).Abs() > 5*time.Millisecond {
					t.Errorf("median offset %s, want %s", got, tt.offset)
				}
			}
		})
	}
}

// shiftSpans moves the spans named name by d.
func shiftSpans(spans []storage.SpanShape, name string, d time.Duration) []storage.SpanShape {
	for i := range spans {
		if spans[i].Name == name {
			spans[i].Start += int64(d)
			spans[i].End += int64(d)
		}
	}
	return spans
}

// childrenOf adds, for every span of service svc and kind kind, a child
// made by f from the parent's start and end.
func childrenOf(spans []storage.SpanShape, svc string, kind ptrace.SpanKind, f func(g *spanGen, p storage.SpanShape, start, end time.Time)) []storage.SpanShape {
	g := newSpanGen(shopOptions{seed: 42})
	for _, p := range spans {
		if p.Service == svc && p.Kind == kind {
			f(g, p, time.Unix(0, p.Start), time.Unix(0, p.End))
		}
	}
	return append(spans, g.spans...)
}

// withLateConsumers adds messages orders publishes that shipping consumes
// up to a second after the producer span ended.
func withLateConsumers(spans []storage.SpanShape) []storage.SpanShape {
	return childrenOf(spans, "orders", ptrace.SpanKindServer, func(g *spanGen, p storage.SpanShape, _, end time.Time) {
		pub := g.span(p.TraceID, p.SpanID, "orders", "orders publish", ptrace.SpanKindProducer, end.Add(-time.Millisecond), end.Add(-900*time.Microsecond), "kafka:9092", true)
		at := end.Add(g.between(100*time.Millisecond, time.Second))
		g.span(p.TraceID, pub.SpanID, "shipping", "orders process", ptrace.SpanKindConsumer, at, at.Add(5*time.Millisecond), "", true)
	})
}

// withTimeouts adds gateway calls to a slow report service: the client
// gives up after 5s, the server finishes at 7s.
func withTimeouts(spans []storage.SpanShape) []storage.SpanShape {
	return childrenOf(spans, "gateway", ptrace.SpanKindServer, func(g *spanGen, p storage.SpanShape, start, _ time.Time) {
		if g.rng.IntN(10) > 0 {
			return
		}
		cl := g.span(p.TraceID, p.SpanID, "gateway", "GET", ptrace.SpanKindClient, start, start.Add(5*time.Second), peerOf("reports"), true)
		g.span(p.TraceID, cl.SpanID, "reports", "GET /report", ptrace.SpanKindServer, start.Add(time.Millisecond), start.Add(7*time.Second), peerOf("reports"), true)
	})
}

// withBackgroundWork adds work catalog starts from a handler and that ends
// after the handler returned.
func withBackgroundWork(spans []storage.SpanShape) []storage.SpanShape {
	return childrenOf(spans, "catalog", ptrace.SpanKindServer, func(g *spanGen, p storage.SpanShape, start, end time.Time) {
		g.span(p.TraceID, p.SpanID, "catalog", "warm cache", ptrace.SpanKindInternal, end.Add(-100*time.Microsecond), end.Add(200*time.Millisecond), "", true)
	})
}

// withBackwardSpan adds one span whose end is before its start, as a
// clock step can make.
func withBackwardSpan(spans []storage.SpanShape) []storage.SpanShape {
	start := testNow.Add(-2 * time.Minute)
	return append(spans, storage.SpanShape{
		TraceID: pcommon.TraceID{0xbb, 1}, SpanID: pcommon.SpanID{0xbb, 1}, Service: "catalog", Name: "GET /products",
		Kind: ptrace.SpanKindServer, Start: start.UnixNano(), End: start.Add(-time.Millisecond).UnixNano(),
	})
}
