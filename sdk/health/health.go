// Package health serves liveness, readiness and component health endpoints
// for a Go service, following the Kubernetes /livez, /readyz and /healthz
// conventions.
//
// Liveness answers "is the process able to serve HTTP at all" and never runs
// checks, so a slow dependency cannot get the pod restarted. Readiness answers
// "should traffic be routed here": it is false during startup (until
// SetReady(true)), after Shutdown, and while any critical check fails.
// Health is the detailed, human-oriented report of every registered check.
package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ErrCheckTimeout is reported (wrapped) for a check that did not return
// within its timeout.
var ErrCheckTimeout = errors.New("health check timed out")

// Status is the health of a single component or of the whole service.
type Status string

// Status values used in the /healthz document.
const (
	// StatusOK means every check passed.
	StatusOK Status = "ok"
	// StatusDegraded means only non-critical checks failed; the service still
	// answers 200 because it can serve, with reduced functionality.
	StatusDegraded Status = "degraded"
	// StatusDown means a critical check failed (or, for a component, that
	// this component's check failed).
	StatusDown Status = "down"
)

// DefaultTimeout bounds a check when neither Options.DefaultTimeout nor
// WithTimeout says otherwise.
const DefaultTimeout = 2 * time.Second

// Options configures a Checker. The zero value is usable.
type Options struct {
	// Logger receives check failures at Warn level. Nil discards logs.
	Logger *slog.Logger
	// DefaultTimeout bounds each check that has no WithTimeout option.
	// Zero or negative means DefaultTimeout (2s).
	DefaultTimeout time.Duration
	// Now is the clock used to measure check latency; tests inject a fixed
	// clock to get deterministic output. Nil means time.Now.
	Now func() time.Time
}

// CheckOption customises one registered check.
type CheckOption func(*check)

// WithTimeout bounds this check instead of Options.DefaultTimeout.
// Zero or negative keeps the default.
func WithTimeout(d time.Duration) CheckOption {
	return func(c *check) {
		if d > 0 {
			c.timeout = d
		}
	}
}

// Critical marks the check as critical: when it fails the service is "down"
// (503 on /healthz) and not ready (503 on /readyz). Checks are non-critical by
// default, so a failing optional dependency only degrades the service.
func Critical() CheckOption {
	return func(c *check) { c.critical = true }
}

type check struct {
	name     string
	fn       func(context.Context) error
	timeout  time.Duration
	critical bool
}

// Checker holds the registered checks and the readiness state. It is safe
// for concurrent use; checks may be registered while handlers are serving.
type Checker struct {
	logger         *slog.Logger
	defaultTimeout time.Duration
	now            func() time.Time

	ready        atomic.Bool
	shuttingDown atomic.Bool

	mu     sync.RWMutex
	checks map[string]check
}

// New returns a Checker that is not ready until SetReady(true) is called.
func New(opts Options) *Checker {
	c := &Checker{
		logger:         opts.Logger,
		defaultTimeout: opts.DefaultTimeout,
		now:            opts.Now,
		checks:         make(map[string]check),
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	if c.defaultTimeout <= 0 {
		c.defaultTimeout = DefaultTimeout
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c
}

// Register adds (or, for an existing name, replaces) a named check. The check
// must honour ctx cancellation; one that does not is still reported as timed
// out on time, but its goroutine lingers until it returns. Register panics on
// an empty name or a nil check because both are programming errors.
func (c *Checker) Register(name string, fn func(context.Context) error, opts ...CheckOption) {
	if name == "" || fn == nil {
		panic("health: Register needs a non-empty name and a non-nil check")
	}
	ch := check{name: name, fn: fn, timeout: c.defaultTimeout}
	for _, o := range opts {
		o(&ch)
	}
	c.mu.Lock()
	c.checks[name] = ch
	c.mu.Unlock()
}

// SetReady sets whether startup is complete. It has no effect after Shutdown,
// so a late SetReady(true) cannot put a draining instance back in rotation.
func (c *Checker) SetReady(ready bool) {
	c.ready.Store(ready)
}

// Shutdown marks the service not ready for good, so load balancers stop
// routing new traffic while in-flight requests drain. Liveness is unaffected.
func (c *Checker) Shutdown() {
	c.shuttingDown.Store(true)
}

// ComponentResult is the outcome of one check in the /healthz document.
type ComponentResult struct {
	// Status is StatusOK or StatusDown.
	Status Status `json:"status"`
	// LatencyMS is how long the check took, in whole milliseconds.
	LatencyMS int64 `json:"latency_ms"`
	// Error is the check's error message; empty when Status is ok.
	Error string `json:"error,omitempty"`
	// Critical reports whether this component's failure takes the service down.
	Critical bool `json:"critical"`
}

// Report is the /healthz document.
type Report struct {
	// Status is the aggregate status.
	Status Status `json:"status"`
	// Components maps check names to their results.
	Components map[string]ComponentResult `json:"components"`
}

// Check runs every registered check concurrently, each bounded by its own
// timeout and by ctx, and aggregates the results.
func (c *Checker) Check(ctx context.Context) Report {
	return c.run(ctx, func(check) bool { return true })
}

func (c *Checker) run(ctx context.Context, include func(check) bool) Report {
	c.mu.RLock()
	checks := make([]check, 0, len(c.checks))
	for _, ch := range c.checks {
		if include(ch) {
			checks = append(checks, ch)
		}
	}
	c.mu.RUnlock()

	results := make([]ComponentResult, len(checks))
	var wg sync.WaitGroup
	for i, ch := range checks {
		wg.Go(func() { results[i] = c.runOne(ctx, ch) })
	}
	wg.Wait()

	rep := Report{Status: StatusOK, Components: make(map[string]ComponentResult, len(checks))}
	for i, ch := range checks {
		r := results[i]
		rep.Components[ch.name] = r
		if r.Status == StatusOK {
			continue
		}
		switch {
		case ch.critical:
			rep.Status = StatusDown
		case rep.Status == StatusOK:
			rep.Status = StatusDegraded
		}
	}
	return rep
}

func (c *Checker) runOne(parent context.Context, ch check) ComponentResult {
	ctx, cancel := context.WithTimeout(parent, ch.timeout)
	defer cancel()

	start := c.now()
	// Buffered so a check that ignores ctx can still finish and exit after
	// we have stopped waiting for it.
	done := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- fmt.Errorf("health check panicked: %v", p)
			}
		}()
		done <- ch.fn(ctx)
	}()

	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	// A check that returns the context error (or is abandoned) at its own
	// deadline is reported as a timeout, not as a generic failure, so the
	// operator knows to look at latency rather than correctness.
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && parent.Err() == nil {
		err = fmt.Errorf("%w after %s: %w", ErrCheckTimeout, ch.timeout, err)
	}
	res := ComponentResult{
		Status:    StatusOK,
		LatencyMS: c.now().Sub(start).Milliseconds(),
		Critical:  ch.critical,
	}
	if err != nil {
		res.Status = StatusDown
		res.Error = err.Error()
		c.logger.LogAttrs(parent, slog.LevelWarn, "health check failed",
			slog.String("check", ch.name), slog.Bool("critical", ch.critical), slog.String("error", res.Error))
	}
	return res
}

// Livez reports 200 whenever the process can serve HTTP. It runs no checks on
// purpose: a failing dependency must not make the orchestrator restart us.
func (c *Checker) Livez() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "ok")
	})
}

// Readyz reports 200 when the service should receive traffic, and 503 during
// startup (before SetReady(true)), after Shutdown, or while a critical check
// fails. Only critical checks run here, keeping the probe cheap.
func (c *Checker) Readyz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case c.shuttingDown.Load():
			writeText(w, http.StatusServiceUnavailable, "not ready: shutting down")
			return
		case !c.ready.Load():
			writeText(w, http.StatusServiceUnavailable, "not ready: starting")
			return
		}
		rep := c.run(r.Context(), func(ch check) bool { return ch.critical })
		if rep.Status == StatusDown {
			failed := make([]string, 0, len(rep.Components))
			for name, res := range rep.Components {
				if res.Status != StatusOK {
					failed = append(failed, name)
				}
			}
			slices.Sort(failed)
			writeText(w, http.StatusServiceUnavailable, fmt.Sprintf("not ready: critical checks failing: %v", failed))
			return
		}
		writeText(w, http.StatusOK, "ok")
	})
}

// Healthz runs every check and writes the Report as JSON: 200 for ok and
// degraded, 503 for down.
func (c *Checker) Healthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rep := c.Check(r.Context())
		code := http.StatusOK
		if rep.Status == StatusDown {
			code = http.StatusServiceUnavailable
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(code)
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			c.logger.LogAttrs(r.Context(), slog.LevelDebug, "health: writing report", slog.String("error", err.Error()))
		}
	})
}

// Mount registers GET /livez, /readyz and /healthz on mux.
func (c *Checker) Mount(mux *http.ServeMux) {
	mux.Handle("GET /livez", c.Livez())
	mux.Handle("GET /readyz", c.Readyz())
	mux.Handle("GET /healthz", c.Healthz())
}

func writeText(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = fmt.Fprintln(w, msg)
}
