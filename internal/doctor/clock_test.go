package doctor

import (
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage"
)

// A callee's clock minutes off its caller's is one fault, named once: by
// span_timing with the hop and the offset, never also as lost spans.
func TestClockSkewNamedOnce(t *testing.T) {
	tests := []struct {
		scenario string
		spans    []storage.SpanShape
		want     []string
		// summary is found in the span_timing finding's summary.
		summary string
	}{
		{
			scenario: "catalog's clock runs 3 minutes behind",
			spans:    shopSpans(shopOptions{seed: 31, rps: 10, skew: map[string]time.Duration{"catalog": -3 * time.Minute}}),
			want:     []string{"span_timing gateway → catalog"},
			summary:  "catalog's clock is about 3m0s behind gateway's",
		},
		{
			scenario: "payments' clock runs 2 minutes ahead",
			spans:    shopSpans(shopOptions{seed: 32, rps: 10, skew: map[string]time.Duration{"payments": 2 * time.Minute}}),
			want:     []string{"span_timing orders → payments"},
			summary:  "payments's clock is about 2m0s ahead of orders's",
		},
		{
			scenario: "the demo's load, catalog 5 minutes behind",
			spans:    shopSpans(shopOptions{rps: 5, periodic: true, skew: map[string]time.Duration{"catalog": -5 * time.Minute}}),
			want:     []string{"span_timing gateway → catalog"},
			summary:  "about 5m0s behind",
		},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			findings := runTraceChecks(t, tt.spans)
			expectFindings(t, findings, tt.want...)
			for _, f := range findings {
				t.Logf("%s %s: %s", f.Code, f.Subject, f.Evidence.Summary)
				if f.Code == "span_timing" && !strings.Contains(f.Evidence.Summary, tt.summary) {
					t.Errorf("summary %q lacks %q", f.Evidence.Summary, tt.summary)
				}
			}
		})
	}
}

func TestOffsetEstimate(t *testing.T) {
	ms := func(n int64) int64 { return n * int64(time.Millisecond) }
	kinds := map[string]ptrace.SpanKind{"client": ptrace.SpanKindClient, "server": ptrace.SpanKindServer, "producer": ptrace.SpanKindProducer, "consumer": ptrace.SpanKindConsumer}
	span := func(kind string, start, end int64) *storage.SpanShape {
		return &storage.SpanShape{Kind: kinds[kind], Start: ms(start), End: ms(end)}
	}
	tests := []struct {
		name          string
		parent, child *storage.SpanShape
		want          time.Duration
	}{
		// A 10ms call answered in 8ms by a server 60s behind: 1ms each way.
		{"client and server: the midpoints", span("client", 1000, 1010), span("server", 1000+1-60000, 1000+9-60000), -60 * time.Second},
		{"client and server, sound clocks", span("client", 1000, 1010), span("server", 1001, 1009), 0},
		// Without a client span the bounds are loose: no offset is taken
		// while none is needed, else the nearest bound.
		{"server around a call, sound clocks", span("server", 1000, 1100), span("server", 1040, 1050), 0},
		{"server around a call, callee 2s ahead", span("server", 1000, 1100), span("server", 3040, 3050), 1950 * time.Millisecond},
		{"server around a call, callee 2s behind", span("server", 1000, 1100), span("server", -960, -950), -1960 * time.Millisecond},
		// A consumer may run long after its producer: only starting first
		// says something.
		{"consumer after its producer", span("producer", 1000, 1001), span("consumer", 5000, 5010), 0},
		{"consumer before its producer", span("producer", 1000, 1001), span("consumer", -2000, -1990), -3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := offsetEstimate(tt.parent, tt.child)
			if !ok || time.Duration(got) != tt.want {
				t.Errorf("offsetEstimate = %s, %v; want %s", time.Duration(got), ok, tt.want)
			}
		})
	}
}

func TestServiceClocks(t *testing.T) {
	tests := []struct {
		name    string
		offsets map[hop]hopOffset
		want    map[string]time.Duration
	}{
		{"sound clocks", map[hop]hopOffset{{"gateway", "catalog"}: {time.Millisecond, 100}}, map[string]time.Duration{}},
		{
			"the callee off, the busier side is the reference",
			map[hop]hopOffset{{"gateway", "catalog"}: {-3 * time.Minute, 300}, {"gateway", "orders"}: {0, 100}},
			map[string]time.Duration{"catalog": -3 * time.Minute},
		},
		{
			"offsets add up along a chain",
			map[hop]hopOffset{{"gateway", "orders"}: {-90 * time.Second, 100}, {"orders", "payments"}: {330 * time.Second, 100}, {"gateway", "catalog"}: {0, 300}},
			map[string]time.Duration{"orders": -90 * time.Second, "payments": 4 * time.Minute},
		},
		{"offsets beyond an hour are capped", map[hop]hopOffset{{"a", "b"}: {3 * time.Hour, 10}}, map[string]time.Duration{"b": time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := serviceClocks(tt.offsets)
			if len(got) != len(tt.want) {
				t.Fatalf("serviceClocks = %v, want %v", got, tt.want)
			}
			for svc, d := range tt.want {
				if got[svc] != d {
					t.Errorf("serviceClocks = %v, want %v", got, tt.want)
				}
			}
		})
	}
}

// runTraceChecks runs the two checks that read spans, propagation and
// timing, together over spans as one doctor run does, and returns their
// findings.
func runTraceChecks(t *testing.T, spans []storage.SpanShape) []Finding {
	t.Helper()
	now := func() time.Time { return testNow }
	src := &fakeDiagnosis{spans: spans}
	d, err := New(Options{Checks: []Check{PropagationCheck{Spans: src, Now: now}, TimingCheck{Spans: src, Now: now}}, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	rep := d.Check(t.Context())
	if len(rep.Errors) > 0 {
		t.Fatalf("errors: %v", rep.Errors)
	}
	return rep.Findings
}
