// Package shutdown stops servers within a deadline. A graceful stop waits
// for its clients, and a client can stall forever (a gRPC stream holding a
// half-sent message, an HTTP body that never ends); past the deadline the
// remaining connections are closed, so a stop always ends in time.
package shutdown

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// ErrAbandoned is returned by Wait when the deadline came first: the stop
// goes on in the background and ends with the process.
var ErrAbandoned = errors.New("shutdown: deadline reached, still stopping")

// ErrForced is returned when the deadline came before the clients left and
// their connections were closed under them. Their requests were not
// answered; senders retry them.
var ErrForced = errors.New("shutdown: deadline reached, connections closed")

// Budget splits one shutdown deadline between the phases of a stop: the
// listeners first, then draining what they admitted. The listeners get
// ListenersShare of it, so that however long a client stalls, the drain
// keeps the rest.
type Budget struct {
	start time.Time
	total time.Duration
}

// ListenersShare is the part of a Budget the listeners may use.
const ListenersShare = 2.0 / 3

// NewBudget starts a budget of total now.
func NewBudget(total time.Duration) Budget {
	return Budget{start: time.Now(), total: total}
}

// Listeners returns a context that ends when the listeners' share is spent.
func (b Budget) Listeners(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithDeadline(parent, b.start.Add(time.Duration(float64(b.total)*ListenersShare)))
}

// All returns a context that ends with the whole budget.
func (b Budget) All(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithDeadline(parent, b.start.Add(b.total))
}

// Elapsed is the time since the budget started.
func (b Budget) Elapsed() time.Duration { return time.Since(b.start) }

// GRPCServer is what GRPC needs of a *grpc.Server.
type GRPCServer interface {
	GracefulStop()
	Stop()
}

// GRPC stops s gracefully (no new calls, calls in flight finish) and, if
// that has not finished when ctx ends, forcibly. It returns ErrForced in
// that case, once the graceful stop has returned too.
func GRPC(ctx context.Context, s GRPCServer) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.GracefulStop()
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	// Stop closes every connection, which ends the graceful stop too.
	s.Stop()
	<-done
	return fmt.Errorf("otlp grpc: %w", ErrForced)
}

// HTTP shuts s down gracefully (listeners closed, idle connections closed,
// requests in flight finish) and, if that has not finished when ctx ends,
// closes the remaining connections, which cancels their requests' contexts.
// It returns ErrForced in that case.
func HTTP(ctx context.Context, name string, s *http.Server) error {
	err := s.Shutdown(ctx)
	if err == nil {
		return nil
	}
	if cerr := s.Close(); cerr != nil {
		return fmt.Errorf("%s: %w", name, cerr)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: %w", name, ErrForced)
	}
	return fmt.Errorf("%s: %w", name, err)
}

// Parallel runs every stop at once and returns their errors joined: one
// stalled listener must not eat into the others' time.
func Parallel(stops ...func() error) error {
	errs := make([]error, len(stops))
	var wg sync.WaitGroup
	for i, stop := range stops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = stop()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Wait runs stop and waits for it until ctx ends. Some work cannot be
// interrupted at every step (the query engine checks for cancellation
// between series, not within one), so past the deadline Wait returns
// ErrAbandoned and leaves stop to finish, or not, before the process exits.
func Wait(ctx context.Context, name string, stop func()) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		stop()
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", name, ErrAbandoned)
	}
}
