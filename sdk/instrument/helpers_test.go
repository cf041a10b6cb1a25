package instrument

import (
	"context"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// spanSink is a tracetest.SpanRecorder that also lets a test block until a
// span ends. Spans of a network hop end on the server's goroutines, possibly
// after the client already has its answer, so tests wait for the span itself
// instead of sleeping.
type spanSink struct {
	*tracetest.SpanRecorder
	mu   sync.Mutex
	cond *sync.Cond
}

func newSpanSink() *spanSink {
	s := &spanSink{SpanRecorder: tracetest.NewSpanRecorder()}
	s.cond = sync.NewCond(&s.mu)
	return s
}

func (s *spanSink) OnEnd(span sdktrace.ReadOnlySpan) {
	s.SpanRecorder.OnEnd(span)
	s.mu.Lock()
	s.cond.Broadcast()
	s.mu.Unlock()
}

// waitEnded blocks until a span of the given kind and name has ended. A span
// that never ends fails the test through go test's own -timeout.
func (s *spanSink) waitEnded(kind trace.SpanKind, name string) sdktrace.ReadOnlySpan {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if sp := findSpan(s.Ended(), kind, name); sp != nil {
			return sp
		}
		s.cond.Wait()
	}
}

func findSpan(spans []sdktrace.ReadOnlySpan, kind trace.SpanKind, name string) sdktrace.ReadOnlySpan {
	for _, sp := range spans {
		if sp.SpanKind() == kind && sp.Name() == name {
			return sp
		}
	}
	return nil
}

// testEnv is a tracer provider recording every span, the W3C trace context
// propagator and a fresh registry with the RED metrics.
type testEnv struct {
	sink *spanSink
	tp   *sdktrace.TracerProvider
	prop propagation.TextMapPropagator
	reg  *prometheus.Registry
	m    *Metrics
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	sink := newSpanSink()
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithSpanProcessor(sink),
	)
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	reg := prometheus.NewPedanticRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatalf("NewMetrics: %v", err)
	}
	return &testEnv{sink: sink, tp: tp, prop: propagation.TraceContext{}, reg: reg, m: m}
}

func (e *testEnv) httpOptions() HTTPOptions {
	return HTTPOptions{TracerProvider: e.tp, Propagators: e.prop}
}

func (e *testEnv) grpcOptions() GRPCOptions {
	return GRPCOptions{TracerProvider: e.tp, Propagators: e.prop}
}

// sampleCount returns how many observations the histogram series name{labels}
// holds in reg, 0 when the series does not exist.
func sampleCount(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelsEqual(m.GetLabel(), labels) {
				return m.GetHistogram().GetSampleCount()
			}
		}
	}
	return 0
}

func labelsEqual(got []*dto.LabelPair, want map[string]string) bool {
	if len(got) != len(want) {
		return false
	}
	for _, lp := range got {
		if v, ok := want[lp.GetName()]; !ok || v != lp.GetValue() {
			return false
		}
	}
	return true
}

// hasEvent reports whether span has an event called name.
func hasEvent(span sdktrace.ReadOnlySpan, name string) bool {
	for _, ev := range span.Events() {
		if ev.Name == name {
			return true
		}
	}
	return false
}

// attr returns the value of the span attribute key, or "".
func attr(span sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range span.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.String()
		}
	}
	return ""
}
