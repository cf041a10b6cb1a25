package memtrim

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Defaults of IdleOptions.
const (
	// DefaultIdleInterval is how often IdleTrimmer looks at the heap.
	DefaultIdleInterval = 30 * time.Second
	// DefaultQuietBytes: a server at rest allocates well under a megabyte
	// in 30 s (measured: 0.3 to 0.6 MiB), a few megabytes in the minutes
	// after a burst while its background work catches up; one ingesting
	// or answering queries allocates megabytes a second.
	DefaultQuietBytes = 16 << 20
	// DefaultBusyBytes is how much must have been allocated since the last
	// trim for the next one to be worth a collection.
	DefaultBusyBytes = 64 << 20
)

// IdleOptions configures an IdleTrimmer. Zero fields take the defaults.
type IdleOptions struct {
	// Interval is how often the allocations are read.
	Interval time.Duration
	// QuietBytes: an interval that allocated fewer bytes than this is
	// quiet.
	QuietBytes uint64
	// BusyBytes: a quiet interval trims only if more than this was
	// allocated since the last trim.
	BusyBytes uint64
	// Logger receives a debug line per trim; nil discards.
	Logger *slog.Logger

	// allocated reads the bytes allocated since the process started; nil
	// reads the runtime's figure. free is called to trim; nil is
	// debug.FreeOSMemory. Tests set both.
	allocated func() uint64
	free      func()
}

// IdleTrimmer returns the heap that a burst of work left behind to the
// operating system once the work is over. After load the Go runtime keeps
// the pages of the garbage it collects (up to twice the live heap with the
// default GOGC) and returns them only slowly; a server at rest allocates
// so little that no collection comes to free the rest. Once an interval
// allocates next to nothing after a busy one, IdleTrimmer collects and
// returns every free page, once: it stays quiet until the next busy spell.
type IdleTrimmer struct {
	opts IdleOptions
}

// NewIdleTrimmer returns a trimmer; Run runs it.
func NewIdleTrimmer(opts IdleOptions) *IdleTrimmer {
	if opts.Interval <= 0 {
		opts.Interval = DefaultIdleInterval
	}
	if opts.QuietBytes == 0 {
		opts.QuietBytes = DefaultQuietBytes
	}
	if opts.BusyBytes == 0 {
		opts.BusyBytes = DefaultBusyBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.allocated == nil {
		opts.allocated = heapAllocated
	}
	if opts.free == nil {
		opts.free = debug.FreeOSMemory
	}
	return &IdleTrimmer{opts: opts}
}

// Run checks every Interval until ctx ends.
func (t *IdleTrimmer) Run(ctx context.Context) {
	tick := time.NewTicker(t.opts.Interval)
	defer tick.Stop()
	// Start-up was trimmed by Startup.
	st := newIdleState(t.opts.allocated())
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if st.next(t.opts.allocated(), t.opts.QuietBytes, t.opts.BusyBytes) {
			start := time.Now()
			t.opts.free()
			// What the collection itself allocated does not count.
			st.trimmed(t.opts.allocated())
			t.opts.Logger.Debug("returned idle heap to the operating system", "took", time.Since(start))
		}
	}
}

// idleState is what IdleTrimmer remembers between intervals: the bytes
// allocated at the end of the last one and at the last trim.
type idleState struct{ prev, trimmedAt uint64 }

func newIdleState(allocated uint64) idleState {
	return idleState{prev: allocated, trimmedAt: allocated}
}

// next takes the allocation count at the end of an interval and reports
// whether to trim now: the interval was quiet and enough was allocated
// since the last trim.
func (s *idleState) next(allocated, quiet, busy uint64) bool {
	trim := allocated-s.prev < quiet && allocated-s.trimmedAt > busy
	s.prev = allocated
	return trim
}

func (s *idleState) trimmed(allocated uint64) { s.prev, s.trimmedAt = allocated, allocated }

// heapAllocated reads the bytes allocated on the heap since the process
// started.
func heapAllocated() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
