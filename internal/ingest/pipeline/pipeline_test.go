package pipeline

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/ingest"
	"github.com/vigil-observability/vigil/internal/selfobs"
)

// gatedWriter blocks every write until released, recording span counts, so
// tests can line requests up behind a write in progress without timing.
type gatedWriter struct {
	mu      sync.Mutex
	writes  []int
	started chan struct{}
	release chan struct{}
	err     error
}

func newGatedWriter() *gatedWriter {
	return &gatedWriter{started: make(chan struct{}, 100), release: make(chan struct{}, 100)}
}

func (w *gatedWriter) WriteTraces(ctx context.Context, td ptrace.Traces) error {
	w.started <- struct{}{}
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = append(w.writes, td.SpanCount())
	return w.err
}

func traces(n int) ptrace.Traces {
	td := ptrace.NewTraces()
	ss := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty()
	for range n {
		ss.Spans().AppendEmpty().SetName("op")
	}
	return td
}

// waitQueued waits until the queue holds want items.
func waitQueued[T any](t *testing.T, q *queue[T], want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		q.mu.Lock()
		got := q.items
		q.mu.Unlock()
		if got == want {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("queue never held %d items", want)
}

func TestGroupCommitMergesWaitingRequests(t *testing.T) {
	w := newGatedWriter()
	p := NewTraces(w, Options{})
	errs := make(chan error, 10)
	go func() { errs <- p.ConsumeTraces(t.Context(), traces(1)) }()
	<-w.started // first write in progress; the next requests wait behind it
	for range 5 {
		go func() { errs <- p.ConsumeTraces(t.Context(), traces(2)) }()
	}
	waitQueued(t, p.q, 11)
	w.release <- struct{}{}
	<-w.started
	w.release <- struct{}{}
	for range 6 {
		if err := <-errs; err != nil {
			t.Fatalf("ConsumeTraces: %v", err)
		}
	}
	if len(w.writes) != 2 || w.writes[0] != 1 || w.writes[1] != 10 {
		t.Fatalf("writes = %v, want [1 10]: the five waiting requests should share one write", w.writes)
	}
	if err := p.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// With Linger, requests arriving one after another while the writer is
// free share a write, and a lone request is still written.
func TestLingerGathersRequestsArrivingApart(t *testing.T) {
	w := newGatedWriter()
	for range 10 {
		w.release <- struct{}{}
	}
	// Long enough that the requests below arrive within its quarter
	// even on a busy machine.
	p := NewTraces(w, Options{Linger: 2 * time.Second})
	errs := make(chan error, 10)
	for i := range 3 {
		go func() { errs <- p.ConsumeTraces(t.Context(), traces(1)) }()
		waitQueued(t, p.q, i+1)
		time.Sleep(5 * time.Millisecond)
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatalf("ConsumeTraces: %v", err)
		}
	}
	start := time.Now()
	if err := p.ConsumeTraces(t.Context(), traces(4)); err != nil {
		t.Fatalf("ConsumeTraces: %v", err)
	}
	if waited := time.Since(start); waited > 2*time.Second {
		t.Errorf("a lone request waited %v, more than Linger", waited)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.writes) != 2 || w.writes[0] != 3 || w.writes[1] != 4 {
		t.Fatalf("writes = %v, want [3 4]: requests arriving apart within Linger share a write", w.writes)
	}
	if err := p.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestOverloadRefusesWithoutWaiting(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := selfobs.NewIngestMetrics(reg)
	w := newGatedWriter()
	p := NewTraces(w, Options{MaxQueueItems: 10, Ingest: m})
	first := make(chan error, 1)
	go func() { first <- p.ConsumeTraces(t.Context(), traces(8)) }()
	<-w.started
	if err := p.ConsumeTraces(t.Context(), traces(3)); !errors.Is(err, ingest.ErrOverloaded) {
		t.Fatalf("over capacity: got %v, want ErrOverloaded", err)
	}
	second := make(chan error, 1)
	go func() { second <- p.ConsumeTraces(t.Context(), traces(2)) }() // fits: 8+2 <= 10
	waitQueued(t, p.q, 10)
	w.release <- struct{}{}
	<-w.started
	w.release <- struct{}{}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(m.Stored.WithLabelValues("traces")); got != 10 {
		t.Fatalf("stored = %v, want 10", got)
	}
	if got := testutil.ToFloat64(m.QueueDepth.WithLabelValues("traces")); got != 0 {
		t.Fatalf("queue depth after drain = %v, want 0", got)
	}
}

func TestOversizedRequestAdmittedWhenEmpty(t *testing.T) {
	w := newGatedWriter()
	w.release <- struct{}{}
	p := NewTraces(w, Options{MaxQueueItems: 10})
	if err := p.ConsumeTraces(t.Context(), traces(50)); err != nil {
		t.Fatalf("a lone oversized request must be admitted: %v", err)
	}
}

func TestWriteErrorIsRetryableForEveryWaiter(t *testing.T) {
	w := newGatedWriter()
	w.err = errors.New("disk full")
	w.release <- struct{}{}
	p := NewTraces(w, Options{})
	err := p.ConsumeTraces(t.Context(), traces(1))
	if !errors.Is(err, ingest.ErrUnavailable) {
		t.Fatalf("got %v, want ErrUnavailable wrapping the storage error", err)
	}
}

func TestCloseDrainsAdmittedRequests(t *testing.T) {
	w := newGatedWriter()
	p := NewTraces(w, Options{})
	errs := make(chan error, 2)
	go func() { errs <- p.ConsumeTraces(t.Context(), traces(1)) }()
	<-w.started
	go func() { errs <- p.ConsumeTraces(t.Context(), traces(4)) }()
	waitQueued(t, p.q, 5)
	closed := make(chan error, 1)
	go func() { closed <- p.Close(t.Context()) }()
	w.release <- struct{}{}
	<-w.started
	w.release <- struct{}{}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("admitted request lost at close: %v", err)
		}
	}
	if err := p.ConsumeTraces(t.Context(), traces(1)); !errors.Is(err, ErrClosed) || !errors.Is(err, ingest.ErrUnavailable) {
		t.Fatalf("after close: got %v, want ErrClosed (retryable)", err)
	}
}

func TestCanceledCallerDoesNotBlockWriter(t *testing.T) {
	w := newGatedWriter()
	p := NewTraces(w, Options{})
	ctx, cancel := context.WithCancel(t.Context())
	errs := make(chan error, 1)
	go func() { errs <- p.ConsumeTraces(ctx, traces(1)) }()
	<-w.started
	cancel()
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	w.release <- struct{}{}
	if err := p.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(w.writes) != 1 {
		t.Fatalf("the canceled caller's data must still be written (at-least-once), writes=%v", w.writes)
	}
}

// A shutdown budget already spent (by a slow query, say) must not turn a
// drain into an error when there was nothing to drain; when there was, the
// error says how much was left and that it was never acknowledged.
func TestCloseAfterBudgetSpent(t *testing.T) {
	for _, tc := range []struct {
		name     string
		queued   int // spans waiting behind a write that does not finish
		wantErr  error
		wantLeft string
	}{
		{name: "empty queue", wantErr: nil},
		{name: "write in progress", queued: 3, wantErr: ErrDrainCutShort, wantLeft: "3 traces not written"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newGatedWriter()
			p := NewTraces(w, Options{})
			defer func() { w.release <- struct{}{} }() // let the writer finish after the test
			errs := make(chan error, 1)
			if tc.queued > 0 {
				go func() { errs <- p.ConsumeTraces(t.Context(), traces(tc.queued)) }()
				<-w.started
			}
			spent, cancel := context.WithCancel(t.Context())
			cancel()
			err := p.Close(spent)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("Close = %v, want %v", err, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tc.wantLeft) {
				t.Errorf("Close = %q, want it to say %q", err, tc.wantLeft)
			}
		})
	}
}
