// Package gate stops ingest at shutdown. Once the gate is closed every
// receiver refuses new data as unavailable (HTTP 503 with Retry-After, gRPC
// UNAVAILABLE), so nothing is acknowledged after the write queues start to
// drain: a sender either got its acknowledgement before the drain or is told
// to retry, and never gets one for data the stopping process may not store.
package gate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/ingest"
)

// ErrClosed is what a closed gate answers. It is wrapped with
// ingest.ErrUnavailable, which every receiver maps to a retryable answer.
var ErrClosed = errors.New("ingest: shutting down")

// DefaultRetryAfter is the delay suggested to refused senders when
// Options.RetryAfter is zero: about what a restart takes.
const DefaultRetryAfter = 5 * time.Second

// Options configures a Gate.
type Options struct {
	// RetryAfter is sent as Retry-After by Wrap (DefaultRetryAfter if 0).
	RetryAfter time.Duration
}

// Gate admits ingest until Close. Its methods are safe for concurrent use;
// the zero value is not usable, call New.
type Gate struct {
	closed     atomic.Bool
	retryAfter string
}

// New returns an open gate.
func New(opts Options) *Gate {
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = DefaultRetryAfter
	}
	return &Gate{retryAfter: strconv.Itoa(int(math.Ceil(opts.RetryAfter.Seconds())))}
}

// Close refuses everything that has not yet been handed to a consumer.
// Requests already handed over finish and are answered as usual. Closing
// twice is harmless.
func (g *Gate) Close() { g.closed.Store(true) }

// Closed reports whether Close was called.
func (g *Gate) Closed() bool { return g.closed.Load() }

// check returns the error a closed gate answers, or nil.
func (g *Gate) check() error {
	if g.closed.Load() {
		return fmt.Errorf("%w: %w", ingest.ErrUnavailable, ErrClosed)
	}
	return nil
}

// Wrap answers 503 with Retry-After, before reading the body, to requests
// arriving once the gate is closed, and passes the others to next. The
// connection is closed after the answer so that a sender's next attempt
// opens a new one, to whichever instance is up by then.
func (g *Gate) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !g.closed.Load() {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Retry-After", g.retryAfter)
		w.Header().Set("Connection", "close")
		http.Error(w, "vigil is shutting down; nothing was stored, retry later", http.StatusServiceUnavailable)
	})
}

// Traces refuses spans once the gate is closed. It covers requests whose
// body was still arriving when the gate closed, and every transport (the
// receivers map the error to HTTP 503 and gRPC UNAVAILABLE).
func (g *Gate) Traces(next ingest.TracesConsumer) ingest.TracesConsumer {
	return ingest.TracesConsumerFunc(func(ctx context.Context, td ptrace.Traces) error {
		if err := g.check(); err != nil {
			return err
		}
		return next.ConsumeTraces(ctx, td)
	})
}

// Logs refuses log records once the gate is closed, as Traces does.
func (g *Gate) Logs(next ingest.LogsConsumer) ingest.LogsConsumer {
	return ingest.LogsConsumerFunc(func(ctx context.Context, ld plog.Logs) error {
		if err := g.check(); err != nil {
			return err
		}
		return next.ConsumeLogs(ctx, ld)
	})
}

// Metrics refuses metrics once the gate is closed, as Traces does.
func (g *Gate) Metrics(next ingest.MetricsConsumer) ingest.MetricsConsumer {
	return ingest.MetricsConsumerFunc(func(ctx context.Context, md pmetric.Metrics) error {
		if err := g.check(); err != nil {
			return err
		}
		return next.ConsumeMetrics(ctx, md)
	})
}
