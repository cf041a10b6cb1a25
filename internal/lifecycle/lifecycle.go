// Package lifecycle runs a server's long-running components as one group.
// Every component has one shape, Run(ctx) error; the group starts each as
// it is added and stops them stage by stage within one shutdown budget, so
// the stop order is written down once, beside the list of stages, instead
// of being spread over goroutines, done channels and deferred calls.
package lifecycle

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// Component is a long-running part of a server. Run runs until ctx ends,
// then stops and returns once fully stopped: nothing it started may still
// run, since what it uses (storage) may be closed next. An error returned
// before ctx ended is a failure and stops the group.
//
// A stop that takes time (draining a queue, letting clients finish) runs
// within StopContext(ctx), which ends when the component's share of the
// shutdown budget is spent.
type Component interface {
	Run(ctx context.Context) error
}

// Func adapts a function to Component.
type Func func(ctx context.Context) error

// Run calls f.
func (f Func) Run(ctx context.Context) error { return f(ctx) }

// Loop adapts a function that runs until ctx ends and cannot fail (a ticker
// loop) to Component.
func Loop(run func(ctx context.Context)) Component {
	return Func(func(ctx context.Context) error {
		run(ctx)
		return nil
	})
}

// OnStop is a component that does nothing until it is stopped and then
// calls stop with its stop context: for what has no Run of its own (a
// queue whose writer runs from construction, storage to close, a gate to
// shut).
func OnStop(stop func(ctx context.Context) error) Component {
	return Func(func(ctx context.Context) error {
		<-ctx.Done()
		return stop(StopContext(ctx))
	})
}

// Serve adapts a Serve/Shutdown pair (an http.Server, a gRPC server):
// serve runs until shutdown, called with the stop context, makes it return.
// serve returning first is a failure, unless it returned nil.
func Serve(serve func() error, shutdown func(ctx context.Context) error) Component {
	return Func(func(ctx context.Context) error {
		served := make(chan error, 1)
		go func() { served <- serve() }()
		select {
		case err := <-served:
			return err
		case <-ctx.Done():
		}
		err := shutdown(StopContext(ctx))
		return errors.Join(err, <-served)
	})
}

// RunStop adapts a blocking Run with a separate Stop (the scrape manager):
// stop makes run return.
func RunStop(run func() error, stop func()) Component {
	return Func(func(ctx context.Context) error {
		ran := make(chan error, 1)
		go func() { ran <- run() }()
		select {
		case err := <-ran:
			return err
		case <-ctx.Done():
		}
		stop()
		return <-ran
	})
}

// StopContext is the context a component's stop runs within, once ctx (the
// one its Run was given) has ended: it ends when the component's stage
// reaches its deadline. Outside a stop, or for a stage without a deadline,
// it never ends.
func StopContext(ctx context.Context) context.Context {
	if r, ok := ctx.Value(runKey{}).(*run); ok {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.stopCtx != nil {
			return r.stopCtx
		}
	}
	return context.WithoutCancel(ctx)
}

type runKey struct{}

// run is one call of a component's Run.
type run struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error // set before done closes

	mu      sync.Mutex
	stopCtx context.Context
}

// start calls c.Run in a goroutine of its own. exited, if not nil, is
// called with the run and its error when Run returns.
func start(c Component, exited func(*run, error)) *run {
	r := &run{done: make(chan struct{})}
	// Not derived from any caller's context: a component stops when its
	// turn in the stop comes, not when a signal arrives.
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), runKey{}, r))
	r.cancel = cancel
	go func() {
		err := c.Run(ctx)
		cancel() // a run that ended on its own holds nothing
		r.err = err
		close(r.done)
		if exited != nil {
			exited(r, err)
		}
	}()
	return r
}

// stop ends the run's context; its stop runs within stopCtx.
func (r *run) stop(stopCtx context.Context) {
	r.mu.Lock()
	if r.stopCtx == nil {
		r.stopCtx = stopCtx
	}
	r.mu.Unlock()
	r.cancel()
}

// wait waits for the run to return until ctx ends, and grace more: a
// component that honours its stop context returns right at its deadline,
// and the group should not report that as abandoned.
func (r *run) wait(ctx context.Context, grace time.Duration) (returned bool) {
	select {
	case <-r.done:
		return true
	case <-ctx.Done():
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-r.done:
		return true
	case <-t.C:
		return false
	}
}

// finished reports whether Run has returned.
func (r *run) finished() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// ErrAbandoned is returned when a stop's deadline came before the
// component returned: it goes on stopping in the background and ends with
// the process.
var ErrAbandoned = errors.New("lifecycle: deadline reached, still stopping")

// discard is the logger of a group without one.
var discard = slog.New(slog.DiscardHandler)
