// Package resilience protects a service from its dependencies: circuit
// breakers (built on github.com/sony/gobreaker/v2), an http.RoundTripper that
// adds per-attempt timeouts, safe retries and per-host breaking, and a generic
// Retry helper for non-HTTP calls.
package resilience

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"time"
)

// ErrOpen is returned (wrapping gobreaker.ErrOpenState or
// gobreaker.ErrTooManyRequests) when a breaker rejects a call without running
// it. Test with errors.Is(err, ErrOpen).
var ErrOpen = errors.New("circuit breaker rejected the call")

// State is a breaker state. Its numeric value is what the
// circuit_breaker_state gauge reports.
type State int

// Breaker states.
const (
	StateClosed   State = 0
	StateHalfOpen State = 1
	StateOpen     State = 2
)

// String returns "closed", "half-open" or "open".
func (s State) String() string {
	switch s {
	case StateClosed:
		return "closed"
	case StateHalfOpen:
		return "half-open"
	case StateOpen:
		return "open"
	default:
		return fmt.Sprintf("unknown(%d)", int(s))
	}
}

func fromGobreaker(s gobreaker.State) State {
	switch s {
	case gobreaker.StateHalfOpen:
		return StateHalfOpen
	case gobreaker.StateOpen:
		return StateOpen
	default:
		return StateClosed
	}
}

// Counts are the request counters of the current breaker generation (they
// reset on every state change and every Interval while closed).
type Counts struct {
	Requests             uint32
	TotalSuccesses       uint32
	TotalFailures        uint32
	ConsecutiveSuccesses uint32
	ConsecutiveFailures  uint32
}

// DefaultReadyToTrip opens the breaker once at least 5 requests were seen in
// the current window and at least half of them failed. A ratio, rather than
// gobreaker's consecutive-failure default, tolerates the occasional success
// of a mostly broken dependency.
func DefaultReadyToTrip(c Counts) bool {
	return c.Requests >= 5 && c.TotalFailures*2 >= c.Requests
}

// BreakerOptions configures a Breaker. Zero values take gobreaker's defaults
// unless stated otherwise.
type BreakerOptions struct {
	// MaxRequests is how many probe calls may run while half-open; that many
	// consecutive successes close the breaker. 0 means 1.
	MaxRequests uint32
	// Interval is the closed-state window after which counts reset.
	// 0 means counts never reset while closed.
	Interval time.Duration
	// Timeout is how long the breaker stays open before allowing probes.
	// 0 means 60s.
	Timeout time.Duration
	// ReadyToTrip decides, after each failure while closed, whether to open.
	// Nil means DefaultReadyToTrip.
	ReadyToTrip func(Counts) bool
	// Registerer receives the breaker metrics. Nil means the metrics are not
	// registered anywhere (no implicit global registry). Breakers sharing a
	// Registerer share the metric families, distinguished by the name label.
	Registerer prometheus.Registerer
	// Logger receives state transitions at Warn level. Nil discards logs.
	Logger *slog.Logger
}

// Breaker is a named circuit breaker with Prometheus metrics and trace
// events. It is safe for concurrent use.
//
// State transitions only happen inside a call (Do, or a request through
// Transport) or inside State: gobreaker evaluates its timers lazily. The
// "circuit_breaker.state_change" span event is therefore added to the span of
// the call that caused the transition, when that call's context carries one;
// a breaker that opened and whose Timeout elapsed reports half-open only when
// the next call (or State) observes it.
type Breaker struct {
	name   string
	cb     *gobreaker.TwoStepCircuitBreaker[struct{}]
	logger *slog.Logger
	m      *breakerMetrics

	// mu serialises calls into gobreaker so that OnStateChange, which
	// gobreaker invokes synchronously on the calling goroutine, can find the
	// context of the call that triggered it in callCtx.
	mu      sync.Mutex
	callCtx context.Context
}

// errExcluded marks an outcome that must not count for or against the
// dependency, e.g. the caller cancelling its own request.
var errExcluded = errors.New("resilience: excluded outcome")

// errFailure is reported to gobreaker for failures that carry no error
// value, such as an HTTP 503 response.
var errFailure = errors.New("resilience: failure")

// NewBreaker returns a closed breaker. Metric registration failures other
// than "already registered" are logged and the breaker works unmetered.
func NewBreaker(name string, opts BreakerOptions) *Breaker {
	b := &Breaker{name: name, logger: opts.Logger}
	if b.logger == nil {
		b.logger = slog.New(slog.DiscardHandler)
	}
	b.m = newBreakerMetrics(opts.Registerer, b.logger)
	readyToTrip := opts.ReadyToTrip
	if readyToTrip == nil {
		readyToTrip = DefaultReadyToTrip
	}
	b.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        name,
		MaxRequests: opts.MaxRequests,
		Interval:    opts.Interval,
		Timeout:     opts.Timeout,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return readyToTrip(Counts{
				Requests:             c.Requests,
				TotalSuccesses:       c.TotalSuccesses,
				TotalFailures:        c.TotalFailures,
				ConsecutiveSuccesses: c.ConsecutiveSuccesses,
				ConsecutiveFailures:  c.ConsecutiveFailures,
			})
		},
		OnStateChange: b.onStateChange,
		IsExcluded:    func(err error) bool { return errors.Is(err, errExcluded) },
	})
	b.m.state.WithLabelValues(name).Set(float64(StateClosed))
	return b
}

// Name returns the breaker's name (the "name" metric label).
func (b *Breaker) Name() string { return b.name }

// State returns the current state, applying any pending timer-driven
// transition (open → half-open).
func (b *Breaker) State() State {
	b.mu.Lock()
	defer b.mu.Unlock()
	return fromGobreaker(b.cb.State())
}

// Do runs fn if the breaker allows it. A non-nil error from fn counts as a
// failure, except when ctx itself was cancelled or expired (the caller gave
// up, which says nothing about the dependency). When the breaker rejects the
// call, fn is not run and the error wraps ErrOpen.
func (b *Breaker) Do(ctx context.Context, fn func(context.Context) error) error {
	done, err := b.allow(ctx)
	if err != nil {
		return err
	}
	err = fn(ctx)
	switch {
	case err == nil:
		done(ctx, nil)
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		done(ctx, errExcluded)
	default:
		done(ctx, err)
	}
	return err
}

// allow asks the breaker for permission. The returned done reports the
// outcome: nil is a success, errExcluded is neither, anything else a failure.
func (b *Breaker) allow(ctx context.Context) (done func(context.Context, error), err error) {
	b.mu.Lock()
	b.callCtx = ctx
	report, err := b.cb.Allow()
	b.callCtx = nil
	b.mu.Unlock()
	if err != nil {
		b.m.requests.WithLabelValues(b.name, "rejected").Inc()
		return nil, fmt.Errorf("%w: breaker %q: %w", ErrOpen, b.name, err)
	}
	return func(ctx context.Context, outcome error) {
		switch {
		case outcome == nil:
			b.m.requests.WithLabelValues(b.name, "success").Inc()
		case errors.Is(outcome, errExcluded):
		default:
			b.m.requests.WithLabelValues(b.name, "failure").Inc()
		}
		b.mu.Lock()
		b.callCtx = ctx
		report(outcome)
		b.callCtx = nil
		b.mu.Unlock()
	}, nil
}

// onStateChange runs on the goroutine of the call that caused the
// transition, with b.mu held (see Breaker.mu).
func (b *Breaker) onStateChange(_ string, from, to gobreaker.State) {
	f, t := fromGobreaker(from), fromGobreaker(to)
	b.m.state.WithLabelValues(b.name).Set(float64(t))
	b.m.transitions.WithLabelValues(b.name, f.String(), t.String()).Inc()
	ctx := b.callCtx
	if ctx == nil {
		ctx = context.Background()
	}
	b.logger.LogAttrs(ctx, slog.LevelWarn, "circuit breaker state change",
		slog.String("breaker", b.name), slog.String("from", f.String()), slog.String("to", t.String()))
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.AddEvent("circuit_breaker.state_change", trace.WithAttributes(
			attribute.String("circuit_breaker.name", b.name),
			attribute.String("circuit_breaker.from", f.String()),
			attribute.String("circuit_breaker.to", t.String()),
		))
	}
}

type breakerMetrics struct {
	state       *prometheus.GaugeVec
	transitions *prometheus.CounterVec
	requests    *prometheus.CounterVec
}

func newBreakerMetrics(reg prometheus.Registerer, logger *slog.Logger) *breakerMetrics {
	m := &breakerMetrics{
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "circuit_breaker_state",
			Help: "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
		}, []string{"name"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "circuit_breaker_transitions_total",
			Help: "Circuit breaker state transitions.",
		}, []string{"name", "from", "to"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "circuit_breaker_requests_total",
			Help: "Calls seen by the circuit breaker, by result (success, failure, rejected).",
		}, []string{"name", "result"}),
	}
	if reg == nil {
		return m
	}
	m.state = register(reg, m.state, logger)
	m.transitions = register(reg, m.transitions, logger)
	m.requests = register(reg, m.requests, logger)
	return m
}

// register registers c, or reuses the identical collector another breaker
// already registered so that many breakers can share one Registerer.
func register[C prometheus.Collector](reg prometheus.Registerer, c C, logger *slog.Logger) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	logger.Warn("circuit breaker metrics not registered", slog.String("error", err.Error()))
	return c
}
