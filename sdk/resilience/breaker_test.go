package resilience

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func TestDefaultReadyToTrip(t *testing.T) {
	tests := []struct {
		c    Counts
		want bool
	}{
		{Counts{Requests: 4, TotalFailures: 4}, false},
		{Counts{Requests: 5, TotalFailures: 2}, false},
		{Counts{Requests: 5, TotalFailures: 3}, true},
		{Counts{Requests: 10, TotalFailures: 5}, true},
		{Counts{Requests: 10, TotalFailures: 4}, false},
	}
	for _, tt := range tests {
		if got := DefaultReadyToTrip(tt.c); got != tt.want {
			t.Errorf("DefaultReadyToTrip(%+v) = %v, want %v", tt.c, got, tt.want)
		}
	}
}

func TestBreakerViaTransportOpensRejectsAndRecovers(t *testing.T) {
	var hits atomic.Int32
	var healthy atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)

	reg := prometheus.NewRegistry()
	// Timeout is gobreaker's wall-clock open period; it is short so the test
	// can reach half-open, and nothing asserts on elapsed time.
	br := NewBreaker("upstream", BreakerOptions{Timeout: 50 * time.Millisecond, Registerer: reg})
	var asked atomic.Value
	rt := Transport(srv.Client().Transport, TransportOptions{
		MaxRetries: -1,
		Breaker: func(host string) *Breaker {
			asked.Store(host)
			return br
		},
	})
	client := &http.Client{Transport: rt}
	get := func() (*http.Response, error) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL, nil)
		resp, err := client.Do(req)
		if err == nil {
			_ = resp.Body.Close()
		}
		return resp, err
	}

	for i := range 5 {
		resp, err := get()
		if err != nil || resp.StatusCode != 503 {
			t.Fatalf("request %d: %v %v, want 503", i, resp, err)
		}
	}
	if br.State() != StateOpen {
		t.Fatalf("state = %v after 5 failures, want open", br.State())
	}
	if host := asked.Load().(string); host != srv.Listener.Addr().String() {
		t.Errorf("breaker asked for host %q, want %q", host, srv.Listener.Addr().String())
	}

	_, err := get()
	if !errors.Is(err, ErrOpen) || !errors.Is(err, gobreaker.ErrOpenState) {
		t.Fatalf("err = %v, want ErrOpen wrapping gobreaker.ErrOpenState", err)
	}
	if hits.Load() != 5 {
		t.Fatalf("server hits = %d, want 5 (open breaker must not call the server)", hits.Load())
	}

	healthy.Store(true)
	eventually(t, func() bool { return br.State() == StateHalfOpen })
	if got := metricValue(t, reg, "circuit_breaker_state", map[string]string{"name": "upstream"}); got != 1 {
		t.Errorf("state gauge = %v in half-open, want 1", got)
	}
	if resp, err := get(); err != nil || resp.StatusCode != 200 {
		t.Fatalf("probe: %v %v, want 200", resp, err)
	}
	if br.State() != StateClosed {
		t.Fatalf("state = %v after successful probe, want closed", br.State())
	}

	for _, tt := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"circuit_breaker_state", map[string]string{"name": "upstream"}, 0},
		{"circuit_breaker_requests_total", map[string]string{"name": "upstream", "result": "failure"}, 5},
		{"circuit_breaker_requests_total", map[string]string{"name": "upstream", "result": "rejected"}, 1},
		{"circuit_breaker_requests_total", map[string]string{"name": "upstream", "result": "success"}, 1},
		{"circuit_breaker_transitions_total", map[string]string{"name": "upstream", "from": "closed", "to": "open"}, 1},
		{"circuit_breaker_transitions_total", map[string]string{"name": "upstream", "from": "open", "to": "half-open"}, 1},
		{"circuit_breaker_transitions_total", map[string]string{"name": "upstream", "from": "half-open", "to": "closed"}, 1},
	} {
		if got := metricValue(t, reg, tt.name, tt.labels); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
}

func TestBreakerHalfOpenFailureReopens(t *testing.T) {
	br := NewBreaker("x", BreakerOptions{Timeout: 20 * time.Millisecond, ReadyToTrip: func(c Counts) bool { return c.ConsecutiveFailures >= 1 }})
	boom := errors.New("boom")
	fail := func(context.Context) error { return boom }
	if err := br.Do(t.Context(), fail); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	eventually(t, func() bool { return br.State() == StateHalfOpen })
	if err := br.Do(t.Context(), fail); !errors.Is(err, boom) {
		t.Fatalf("probe err = %v, want boom", err)
	}
	if br.State() != StateOpen {
		t.Fatalf("state = %v, want open after failed probe", br.State())
	}
}

func TestBreakerDoExcludesCallerCancellation(t *testing.T) {
	reg := prometheus.NewRegistry()
	br := NewBreaker("c", BreakerOptions{Registerer: reg, ReadyToTrip: func(c Counts) bool { return c.TotalFailures >= 1 }})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := br.Do(ctx, func(ctx context.Context) error { return ctx.Err() })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if br.State() != StateClosed {
		t.Fatal("caller cancellation must not open the breaker")
	}
	if got := metricValue(t, reg, "circuit_breaker_requests_total", map[string]string{"name": "c", "result": "failure"}); got != -1 {
		t.Fatalf("failure counter = %v, want no series", got)
	}
}

func TestBreakersShareRegisterer(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := NewBreaker("a", BreakerOptions{Registerer: reg})
	b := NewBreaker("b", BreakerOptions{Registerer: reg})
	for _, br := range []*Breaker{a, b, b} {
		if err := br.Do(t.Context(), func(context.Context) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if got := metricValue(t, reg, "circuit_breaker_requests_total", map[string]string{"name": "b", "result": "success"}); got != 2 {
		t.Fatalf("b successes = %v, want 2", got)
	}
	if got := metricValue(t, reg, "circuit_breaker_requests_total", map[string]string{"name": "a", "result": "success"}); got != 1 {
		t.Fatalf("a successes = %v, want 1", got)
	}
}

func TestBreakerStateChangeSpanEvent(t *testing.T) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tracer := tp.Tracer("test")

	br := NewBreaker("db", BreakerOptions{})
	boom := errors.New("boom")
	for range 5 {
		ctx, span := tracer.Start(t.Context(), "call")
		_ = br.Do(ctx, func(context.Context) error { return boom })
		span.End()
	}
	// Calls without a span must not break anything.
	if err := br.Do(t.Context(), func(context.Context) error { return nil }); !errors.Is(err, ErrOpen) {
		t.Fatalf("err = %v, want ErrOpen", err)
	}

	spans := sr.Ended()
	if len(spans) != 5 {
		t.Fatalf("got %d spans, want 5", len(spans))
	}
	for i, s := range spans[:4] {
		if len(s.Events()) != 0 {
			t.Errorf("span %d has events %v; only the tripping call should", i, s.Events())
		}
	}
	events := spans[4].Events()
	if len(events) != 1 || events[0].Name != "circuit_breaker.state_change" {
		t.Fatalf("events = %+v, want one circuit_breaker.state_change", events)
	}
	attrs := map[string]string{}
	for _, kv := range events[0].Attributes {
		attrs[string(kv.Key)] = kv.Value.AsString()
	}
	want := map[string]string{"circuit_breaker.name": "db", "circuit_breaker.from": "closed", "circuit_breaker.to": "open"}
	for k, v := range want {
		if attrs[k] != v {
			t.Errorf("attribute %s = %q, want %q", k, attrs[k], v)
		}
	}
}

func TestRetry(t *testing.T) {
	transient := errors.New("transient")
	permanent := errors.New("permanent")
	tests := []struct {
		name      string
		policy    Policy
		errs      []error // error per attempt; nil = success
		wantCalls int
		wantErr   error
	}{
		{"success first", Policy{}, []error{nil}, 1, nil},
		{"success after retries", Policy{}, []error{transient, transient, nil}, 3, nil},
		{"exhausted", Policy{}, []error{transient, transient, transient, nil}, 3, transient},
		{"more retries", Policy{MaxRetries: 3}, []error{transient, transient, transient, nil}, 4, nil},
		{"retries disabled", Policy{MaxRetries: -1}, []error{transient, nil}, 1, transient},
		{"classifier stops", Policy{Retryable: func(err error) bool { return !errors.Is(err, permanent) }}, []error{transient, permanent, nil}, 2, permanent},
		{"default skips ErrOpen", Policy{}, []error{ErrOpen, nil}, 1, ErrOpen},
		{"default skips deadline", Policy{}, []error{context.DeadlineExceeded, nil}, 1, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &sleepRecorder{}
			tt.policy.Sleep = rec.sleep
			tt.policy.Rand = func() float64 { return 1 }
			calls := 0
			err := Retry(t.Context(), tt.policy, func(context.Context) error {
				calls++
				return tt.errs[calls-1]
			})
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			if calls != tt.wantCalls {
				t.Errorf("calls = %d, want %d", calls, tt.wantCalls)
			}
			if got := rec.got(); len(got) != tt.wantCalls-1 {
				t.Errorf("sleeps = %v, want %d", got, tt.wantCalls-1)
			} else {
				for i, d := range got {
					if want := DefaultBaseDelay << i; d != want {
						t.Errorf("sleep[%d] = %v, want %v", i, d, want)
					}
				}
			}
		})
	}
}

func TestRetryStopsOnContextCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	transient := errors.New("transient")
	calls := 0
	err := Retry(ctx, Policy{MaxRetries: 5, Sleep: (&sleepRecorder{}).sleep}, func(context.Context) error {
		calls++
		cancel()
		return transient
	})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, transient) || calls != 1 {
		t.Fatalf("err=%v calls=%d, want Canceled wrapping transient after 1 call", err, calls)
	}
}

func BenchmarkBreakerDo(b *testing.B) {
	br := NewBreaker("bench", BreakerOptions{Registerer: prometheus.NewRegistry()})
	ctx := context.Background()
	fn := func(context.Context) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		_ = br.Do(ctx, fn)
	}
}
