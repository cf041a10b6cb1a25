// Package pipeline is the write path between receivers and storage: a
// bounded queue per signal that batches concurrent requests into one storage
// write (group commit), acknowledges each request only once its batch is
// durable, and refuses new work with ingest.ErrOverloaded when full instead
// of growing without bound.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/vigil-observability/vigil/internal/ingest"
	"github.com/vigil-observability/vigil/internal/selfobs"
)

var (
	// ErrClosed is returned for requests submitted after Close.
	ErrClosed = errors.New("pipeline: closed")
	// ErrDrainCutShort is returned by Close when its context ended before
	// everything admitted was written. What was left had not been
	// acknowledged (a request is answered only once its batch is durable),
	// so its senders retry it: it is late, not lost.
	ErrDrainCutShort = errors.New("pipeline: drain cut short")
)

// Defaults of Options, also the configuration's (ingest.max_queue_items,
// ingest.max_batch_items).
const (
	DefaultMaxQueueItems = 200_000
	DefaultMaxBatchItems = 20_000
	// DefaultLogsLinger is the Linger of the logs queue. Over Loki push
	// (8 senders of 500 lines, one core) it took write batches from about
	// 1,400 records to 3,700-3,900 and cut the server's CPU per record by
	// about a tenth (docs/performance.md); 20 ms gained little more.
	DefaultLogsLinger = 10 * time.Millisecond
	// DefaultTracesLinger is the Linger of the traces queue. With 8
	// senders of 500 spans (bench/spans.sh) it took write batches from
	// 1,100-1,900 spans to about 3,500 and the server's spans per
	// CPU-second up by a median 11% over eight alternated pairs
	// (docs/performance.md).
	DefaultTracesLinger = 10 * time.Millisecond
)

// Options configures a queue. Zero values take the defaults.
type Options struct {
	// MaxQueueItems bounds the items (spans, log records) accepted and not
	// yet written. A request that would exceed it is refused with
	// ingest.ErrOverloaded, unless the queue is empty: a single request is
	// always admitted so that one large batch cannot be refused forever.
	MaxQueueItems int
	// MaxBatchItems bounds the items merged into one storage write.
	MaxBatchItems int
	// WriteTimeout bounds one storage write.
	WriteTimeout time.Duration
	// Linger is how long the writer may wait, once it is free, for more
	// requests to join a batch smaller than MaxBatchItems; it stops
	// early once a quarter of Linger passes with no request arriving.
	// Zero writes at once. A store whose commit costs much the same for
	// 500 records as for 4,000 (DuckDB's) spends less CPU per record in
	// bigger batches.
	Linger time.Duration
	Ingest *selfobs.IngestMetrics
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.MaxQueueItems <= 0 {
		o.MaxQueueItems = DefaultMaxQueueItems
	}
	if o.MaxBatchItems <= 0 {
		o.MaxBatchItems = DefaultMaxBatchItems
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// batchOps is what the queue needs to know about a payload type T.
type batchOps[T any] struct {
	signal string
	count  func(T) int
	// merge moves everything in src to the end of dst.
	merge func(dst, src T)
	write func(context.Context, T) error
	// stored sees each batch after a successful write.
	stored []func(T)
}

type request[T any] struct {
	data T
	n    int
	at   time.Time  // arrival, for Linger
	done chan error // buffered: the writer never blocks on a departed caller
}

// queue is the generic group-commit queue. One writer goroutine drains it,
// which suits embedded stores that allow a single writer and lets every
// store amortise its durable commit over many requests.
type queue[T any] struct {
	ops  batchOps[T]
	opts Options

	mu      sync.Mutex
	pending []*request[T]
	items   int
	closed  bool
	wake    chan struct{}
	stopped chan struct{}
}

func newQueue[T any](ops batchOps[T], opts Options) *queue[T] {
	q := &queue[T]{
		ops:     ops,
		opts:    opts.withDefaults(),
		wake:    make(chan struct{}, 1),
		stopped: make(chan struct{}),
	}
	go q.run()
	return q
}

// submit enqueues data and waits until it is durable. If ctx ends first the
// data may still be written later; the caller reports an error and the
// client's retry may duplicate it (at-least-once, never lost).
func (q *queue[T]) submit(ctx context.Context, data T) error {
	n := q.ops.count(data)
	if n == 0 {
		return nil
	}
	r := &request[T]{data: data, n: n, done: make(chan error, 1)}
	if q.opts.Linger > 0 {
		r.at = time.Now()
	}
	q.mu.Lock()
	switch {
	case q.closed:
		q.mu.Unlock()
		return fmt.Errorf("%w: %w", ingest.ErrUnavailable, ErrClosed)
	case q.items > 0 && q.items+n > q.opts.MaxQueueItems:
		q.mu.Unlock()
		return ingest.ErrOverloaded // the receiver counts the refusal
	}
	q.pending = append(q.pending, r)
	q.items += n
	q.setDepth()
	q.mu.Unlock()

	select {
	case q.wake <- struct{}{}:
	default:
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (q *queue[T]) setDepth() {
	if q.opts.Ingest != nil {
		q.opts.Ingest.QueueDepth.WithLabelValues(q.ops.signal).Set(float64(q.items))
	}
}

// take removes up to MaxBatchItems worth of requests (at least one).
func (q *queue[T]) take() []*request[T] {
	q.mu.Lock()
	defer q.mu.Unlock()
	total, i := 0, 0
	for i < len(q.pending) && (i == 0 || total+q.pending[i].n <= q.opts.MaxBatchItems) {
		total += q.pending[i].n
		i++
	}
	batch := q.pending[:i:i]
	q.pending = q.pending[i:]
	return batch
}

// linger waits, with Options.Linger, for more requests to join the next
// batch: until it is full, no request has arrived for a quarter of Linger,
// Linger has passed since it started waiting, or the queue closes. A
// closed loop of senders fills the batch as they come back; a steady
// stream waits Linger at most.
func (q *queue[T]) linger() {
	if q.opts.Linger <= 0 {
		return
	}
	start := time.Now()
	timer := time.NewTimer(q.opts.Linger)
	defer timer.Stop()
	for {
		q.mu.Lock()
		if len(q.pending) == 0 || q.closed || q.items >= q.opts.MaxBatchItems {
			q.mu.Unlock()
			return
		}
		last := q.pending[len(q.pending)-1].at
		q.mu.Unlock()
		if last.Before(start) {
			last = start
		}
		now := time.Now()
		gap := q.opts.Linger/4 - now.Sub(last)
		left := q.opts.Linger - now.Sub(start)
		if gap <= 0 || left <= 0 {
			return
		}
		timer.Reset(min(gap, left))
		select {
		case <-timer.C:
		case <-q.wake:
		}
	}
}

func (q *queue[T]) run() {
	defer close(q.stopped)
	for {
		q.linger()
		batch := q.take()
		if len(batch) == 0 {
			q.mu.Lock()
			closed := q.closed && len(q.pending) == 0
			q.mu.Unlock()
			if closed {
				return
			}
			<-q.wake
			continue
		}
		q.flush(batch)
	}
}

func (q *queue[T]) flush(batch []*request[T]) {
	data, n := batch[0].data, batch[0].n
	for _, r := range batch[1:] {
		q.ops.merge(data, r.data)
		n += r.n
	}
	ctx, cancel := context.WithTimeout(context.Background(), q.opts.WriteTimeout)
	start := time.Now()
	err := q.ops.write(ctx, data)
	cancel()
	if m := q.opts.Ingest; m != nil {
		m.WriteDuration.WithLabelValues(q.ops.signal).Observe(time.Since(start).Seconds())
		if err == nil {
			m.Stored.WithLabelValues(q.ops.signal).Add(float64(n))
		}
	}
	if err != nil {
		q.opts.Logger.Error("storage write failed", "signal", q.ops.signal, "items", n, "err", err)
		err = fmt.Errorf("%w: %w", ingest.ErrUnavailable, err)
	} else {
		for _, f := range q.ops.stored {
			f(data)
		}
	}
	for _, r := range batch {
		r.done <- err
	}
	q.mu.Lock()
	q.items -= n
	q.setDepth()
	q.mu.Unlock()
}

// close stops admitting requests, writes everything already admitted, and
// returns when the writer has finished or ctx ends. An empty queue is
// drained even if ctx has already ended: a shutdown budget spent elsewhere
// (a slow query) must not report a drain that had nothing to do as failed.
func (q *queue[T]) close(ctx context.Context) error {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	select {
	case <-q.stopped:
		return nil
	case <-ctx.Done():
	}
	q.mu.Lock()
	left := q.items
	q.mu.Unlock()
	if left == 0 {
		return nil
	}
	return fmt.Errorf("%w: %d %s not written: %w", ErrDrainCutShort, left, q.ops.signal, ctx.Err())
}
