package doctor

import (
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage"
)

// Traffic shapes that nest spans of two services in time while neither
// calls the other. Nesting alone is at most a possibility (info), worded
// as one; a warning needs a client span to the callee's address or roots
// that track the caller's spans one-to-one.
func TestTrafficShapesWithoutCalls(t *testing.T) {
	tests := []struct {
		scenario string
		spans    []storage.SpanShape
		// info are the findings of severity info the scenario gives: the
		// possibility of a call, never a warning.
		info []string
		// want are the warnings a real fault in the scenario gives.
		want []string
	}{
		{
			scenario: "a browser calls gateway and recommendations at once",
			spans:    withCoCalls(shopSpans(shopOptions{seed: 40, rps: 10}), "recommendations"),
			info:     []string{"broken_propagation gateway → recommendations"},
		},
		{
			scenario: "a BFF fans out to gateway, reviews and ads at once",
			spans:    withCoCalls(withCoCalls(shopSpans(shopOptions{seed: 41, rps: 10}), "reviews"), "ads"),
			info:     []string{"broken_propagation gateway → ads", "broken_propagation gateway → reviews"},
		},
		{
			scenario: "a poller on the load generator's tick",
			spans:    withPoller(shopSpans(shopOptions{seed: 42, rps: 5, periodic: true})),
			info:     []string{"broken_propagation gateway → inventory"},
		},
		{
			scenario: "two cron jobs on the same tick",
			spans:    withCronJobs(shopSpans(shopOptions{seed: 43, rps: 5})),
			info:     []string{"broken_propagation billing → mailer"},
		},
		{scenario: "long-lived streams around the other requests", spans: withStreams(shopSpans(shopOptions{seed: 44, rps: 10}))},
		{scenario: "two consumer groups on the same queue", spans: withQueueConsumers(shopSpans(shopOptions{seed: 45, rps: 10}))},
		{
			scenario: "a browser calls gateway and recommendations at once, and gateway drops context to catalog",
			spans:    withCoCalls(shopSpans(shopOptions{seed: 46, rps: 10, dropContext: map[string]bool{"gateway>catalog": true}}), "recommendations"),
			info:     []string{"broken_propagation gateway → recommendations"},
			want:     []string{"broken_propagation gateway → catalog"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			got, err := PropagationCheck{Spans: &fakeDiagnosis{spans: tt.spans}, Now: func() time.Time { return testNow }}.Run(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			expectFindings(t, got, append(tt.want, tt.info...)...)
			for _, f := range got {
				t.Logf("%s %s: %s\n  values %v\n  cause %s\n  fix %s", f.Severity, f.Subject, f.Evidence.Summary, f.Evidence.Values, f.Cause, f.Fix)
				checkTraceFinding(t, f)
				isInfo := false
				for _, k := range tt.info {
					isInfo = isInfo || k == findingKey(f)
				}
				switch {
				case isInfo && f.Severity != Info:
					t.Errorf("%s: severity %s, want info: time nesting alone is no proof of a call", f.Subject, f.Severity)
				case isInfo && (!strings.Contains(f.Cause, "possibly") || !strings.Contains(f.Fix, "settle it") || !strings.Contains(f.Evidence.Summary, "nothing else links them")):
					t.Errorf("%s: not worded as a possibility with what would settle it:\n%s\n%s\n%s", f.Subject, f.Evidence.Summary, f.Cause, f.Fix)
				case !isInfo && f.Severity != Warning:
					t.Errorf("%s: severity %s, want warning", f.Subject, f.Severity)
				}
			}
		})
	}
}

// withCoCalls adds svc, called by the same uninstrumented client as
// gateway and at the same moment (give or take the network), so that its
// roots often nest inside gateway's spans without gateway calling it.
func withCoCalls(spans []storage.SpanShape, svc string) []storage.SpanShape {
	g := newSpanGen(shopOptions{seed: int64(len(svc)) + 60})
	for _, s := range spans {
		if s.Service != "gateway" || s.Kind != ptrace.SpanKindServer || !s.ParentSpanID.IsEmpty() {
			continue
		}
		start := time.Unix(0, s.Start).Add(g.between(-400*time.Microsecond, 400*time.Microsecond))
		g.span(g.traceID(), pcommon.SpanID{}, svc, "GET /"+svc, ptrace.SpanKindServer, start, start.Add(g.between(200*time.Microsecond, 1500*time.Microsecond)), peerOf(svc), true)
	}
	return append(spans, g.spans...)
}

// withPoller adds a job that polls inventory once a second on the same
// kind of ticker as the load generator's, so that its polls land at the
// same moments as a fifth of gateway's requests.
func withPoller(spans []storage.SpanShape) []storage.SpanShape {
	g := newSpanGen(shopOptions{seed: 61})
	for t := testNow.Add(-7 * time.Minute); t.Before(testNow); t = t.Add(time.Second) {
		start := t.Add(g.between(50*time.Microsecond, 300*time.Microsecond))
		g.span(g.traceID(), pcommon.SpanID{}, "inventory", "GET /stock", ptrace.SpanKindServer, start, start.Add(g.between(100*time.Microsecond, 600*time.Microsecond)), peerOf("inventory"), true)
	}
	return append(spans, g.spans...)
}

// withCronJobs adds two jobs a scheduler starts on the same tick every ten
// seconds: billing runs for seconds, the mailer for milliseconds, each
// started a scheduling jitter after the tick.
func withCronJobs(spans []storage.SpanShape) []storage.SpanShape {
	g := newSpanGen(shopOptions{seed: 62})
	for t := testNow.Add(-7 * time.Minute); t.Before(testNow); t = t.Add(10 * time.Second) {
		b := t.Add(g.between(0, 5*time.Millisecond))
		g.span(g.traceID(), pcommon.SpanID{}, "billing", "POST /jobs/invoice", ptrace.SpanKindServer, b, b.Add(g.between(2*time.Second, 4*time.Second)), peerOf("billing"), true)
		m := t.Add(g.between(0, 5*time.Millisecond))
		g.span(g.traceID(), pcommon.SpanID{}, "mailer", "POST /jobs/digest", ptrace.SpanKindServer, m, m.Add(g.between(2*time.Millisecond, 20*time.Millisecond)), peerOf("mailer"), true)
	}
	return append(spans, g.spans...)
}

// withStreams adds clients that keep a stream to notifier open for 20-50s,
// one after another, while they send their other requests to gateway.
func withStreams(spans []storage.SpanShape) []storage.SpanShape {
	g := newSpanGen(shopOptions{seed: 63})
	for client := range 3 {
		t := testNow.Add(-7 * time.Minute).Add(time.Duration(client) * 7 * time.Second)
		for t.Before(testNow) {
			end := t.Add(g.between(20*time.Second, 50*time.Second))
			g.span(g.traceID(), pcommon.SpanID{}, "notifier", "/notify.Notifier/Subscribe", ptrace.SpanKindServer, t, end, peerOf("notifier"), true)
			t = end.Add(g.between(100*time.Millisecond, time.Second))
		}
	}
	return append(spans, g.spans...)
}

// withQueueConsumers adds two consumer groups reading every message orders
// publishes: each starts a new trace (linked to the producer's), at about
// the same moment, and calls a service of its own with context.
func withQueueConsumers(spans []storage.SpanShape) []storage.SpanShape {
	return childrenOf(spans, "orders", ptrace.SpanKindServer, func(g *spanGen, p storage.SpanShape, _, end time.Time) {
		g.span(p.TraceID, p.SpanID, "orders", "orders publish", ptrace.SpanKindProducer, end.Add(-time.Millisecond), end.Add(-900*time.Microsecond), "kafka:9092", true)
		for _, svc := range []string{"shipping", "billing"} {
			at := end.Add(g.between(time.Millisecond, 20*time.Millisecond))
			root := ctx{trace: g.traceID(), emit: true}
			g.serve(root, svc, "orders process", ptrace.SpanKindConsumer, at, func(c ctx, t time.Time) time.Time {
				return g.call(c, svc, "ledger", "POST", "POST /entries", t, g.work(time.Millisecond, 3*time.Millisecond))
			})
		}
	})
}

// Faults that look like lost spans, each named for what it is: a clock
// off (span_timing), a callee sampling on its own, an exporter dropping
// spans; and data not lost at all: spans older than what the store keeps,
// spans that arrive in batches minutes late.
func TestFaultsThatLookLikeLostSpans(t *testing.T) {
	tests := []struct {
		scenario string
		spans    []storage.SpanShape
		want     []string
		// text is, per subject, what its finding's summary, cause or fix
		// says.
		text map[string][]string
	}{
		{
			scenario: "catalog's clock runs 4 minutes behind",
			spans:    shopSpans(shopOptions{seed: 50, rps: 10, skew: map[string]time.Duration{"catalog": -4 * time.Minute}}),
			want:     []string{"span_timing gateway → catalog"},
			text:     map[string][]string{"gateway → catalog": {"clock is about 4m0s behind", "NTP"}},
		},
		{
			scenario: "catalog samples on its own",
			spans:    shopSpans(shopOptions{seed: 51, rps: 10, calleeDrops: map[string]float64{"gateway>catalog": 0.3}}),
			want:     []string{"broken_propagation gateway → catalog"},
			text:     map[string][]string{"gateway → catalog": {"sampler drops traces gateway keeps", "ParentBased"}},
		},
		{
			scenario: "orders' export queue drops spans",
			spans:    shopSpans(shopOptions{seed: 52, rps: 10, queueDrops: map[string]float64{"orders": 0.3}}),
			want:     []string{"broken_propagation orders", "broken_propagation orders → payments"},
			text: map[string][]string{
				"orders":            {"its exporter drops spans", "OTEL_BSP_MAX_QUEUE_SIZE"},
				"orders → payments": {"its exporter drops spans", "OTEL_BSP_MAX_QUEUE_SIZE"},
			},
		},
		{
			// Where orders dropped both its spans around a charge, the
			// orphan lies in gateway's span: still orders' queue.
			scenario: "orders' export queue drops spans, some charges inside gateway's spans only",
			spans:    shopSpans(shopOptions{seed: 103, rps: 10, queueDrops: map[string]float64{"orders": 0.3}}),
			want:     []string{"broken_propagation orders", "broken_propagation orders → payments", "broken_propagation gateway → payments"},
			text: map[string][]string{
				"orders":             {"its exporter drops spans"},
				"orders → payments":  {"its exporter drops spans"},
				"gateway → payments": {"orders's spans go missing one by one", "OTEL_BSP_MAX_QUEUE_SIZE"},
			},
		},
		{
			scenario: "a handler span never ended is not an export queue",
			spans:    shopSpans(shopOptions{seed: 53, rps: 10, unended: map[string]float64{"orders": 0.3}}),
			want:     []string{"broken_propagation orders"},
			text:     map[string][]string{"orders": {"never ended", "defer span.End()"}},
		},
		{
			scenario: "retention cut the oldest spans, long jobs among them",
			spans:    keepFrom(withJobs(shopSpans(shopOptions{seed: 54, rps: 10})), testNow.Add(-5*time.Minute-29*time.Second)),
		},
		{
			scenario: "catalog's spans arrive in batches two minutes late",
			spans:    shopSpans(shopOptions{seed: 55, rps: 10, late: map[string]time.Duration{"catalog": 2 * time.Minute}}),
		},
		{
			scenario: "payments' spans arrive late and it samples on its own",
			spans:    shopSpans(shopOptions{seed: 56, rps: 10, late: map[string]time.Duration{"payments": 90 * time.Second}, calleeDrops: map[string]float64{"orders>payments": 0.5}}),
			want:     []string{"broken_propagation orders → payments"},
			text:     map[string][]string{"orders → payments": {"sampler drops traces orders keeps"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			findings := runTraceChecks(t, tt.spans)
			expectFindings(t, findings, tt.want...)
			for _, f := range findings {
				t.Logf("%s %s: %s\n  cause %s\n  fix %s", f.Code, f.Subject, f.Evidence.Summary, f.Cause, f.Fix)
				checkTraceFinding(t, f)
				all := f.Evidence.Summary + " " + f.Cause + " " + f.Fix
				for _, want := range tt.text[f.Subject] {
					if !strings.Contains(all, want) {
						t.Errorf("%s %s lacks %q:\n%s", f.Code, f.Subject, want, all)
					}
				}
			}
		})
	}
}

// withJobs adds a worker whose jobs run 40s each, one after another, each
// calling catalog every two seconds.
func withJobs(spans []storage.SpanShape) []storage.SpanShape {
	g := newSpanGen(shopOptions{seed: 64})
	for t := testNow.Add(-7 * time.Minute); t.Before(testNow); t = t.Add(45 * time.Second) {
		g.serve(ctx{trace: g.traceID(), emit: true}, "worker", "export", ptrace.SpanKindConsumer, t, func(c ctx, t time.Time) time.Time {
			for range 20 {
				t = g.call(c, "worker", "catalog", "GET", "GET /products", t, g.work(time.Millisecond, 3*time.Millisecond)).Add(2 * time.Second)
			}
			return t
		})
	}
	return append(spans, g.spans...)
}

// keepFrom drops the spans that started before t, as a store's retention
// does.
func keepFrom(spans []storage.SpanShape, t time.Time) []storage.SpanShape {
	var out []storage.SpanShape
	for _, s := range spans {
		if s.Start >= t.UnixNano() {
			out = append(out, s)
		}
	}
	return out
}
