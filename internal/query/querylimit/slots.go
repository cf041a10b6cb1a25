package querylimit

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// ErrBusy is returned when no query slot frees up within the wait: the
// server is at its query concurrency and the caller should retry later.
var ErrBusy = errors.New("too many queries running")

// Slots is the concurrency limiter every query path shares: PromQL (API,
// rules, RED, doctor), trace reads and log searches. Safe for concurrent use.
type Slots struct {
	ch   chan struct{}
	wait time.Duration
}

// NewSlots returns a limiter of n slots (at least one) whose Acquire waits
// up to wait (DefaultQueueWait if zero).
func NewSlots(n int, wait time.Duration) *Slots {
	if wait <= 0 {
		wait = DefaultQueueWait
	}
	return &Slots{ch: make(chan struct{}, max(n, 1)), wait: wait}
}

// Size is the number of slots.
func (s *Slots) Size() int { return cap(s.ch) }

type heldKey struct{}

// Acquire takes a slot, waiting up to the limiter's wait, and returns the
// function that gives it back (call it exactly once) and a context that
// records the slot is held, so that a query run under it does not take a
// second one. A context that already holds a slot gets it for free.
func (s *Slots) Acquire(ctx context.Context) (context.Context, func(), error) {
	if s == nil || ctx.Value(heldKey{}) == s {
		return ctx, func() {}, nil
	}
	t := time.NewTimer(s.wait)
	defer t.Stop()
	select {
	case s.ch <- struct{}{}:
		return context.WithValue(ctx, heldKey{}, s), func() { <-s.ch }, nil
	case <-t.C:
		return ctx, nil, fmt.Errorf("%w: all %d query slots stayed busy for %s; retry later", ErrBusy, cap(s.ch), s.wait)
	case <-ctx.Done():
		return ctx, nil, ctx.Err()
	}
}

// RetryAfterSeconds is the Retry-After sent with ErrBusy answers: about
// the queue wait, when slots have likely turned over.
const RetryAfterSeconds = "5"

// StatusClientClosedRequest is what a request whose client went away while
// it waited is answered (nginx's and Prometheus's 499).
const StatusClientClosedRequest = 499

// Handler serves next under a slot. When none frees up in time it sets
// Retry-After and answers 503 through writeError, in the caller's own
// error shape; a client that left while waiting gets 499.
func (s *Slots) Handler(next http.Handler, writeError func(w http.ResponseWriter, code int, msg string)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, release, err := s.Acquire(r.Context())
		if err != nil {
			if errors.Is(err, ErrBusy) {
				w.Header().Set("Retry-After", RetryAfterSeconds)
				writeError(w, http.StatusServiceUnavailable, err.Error())
				return
			}
			writeError(w, StatusClientClosedRequest, err.Error())
			return
		}
		defer release()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}
