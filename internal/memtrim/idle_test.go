package memtrim

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// A trim comes once a quiet interval follows a busy spell, and not again
// until the next busy spell.
func TestIdleStateTrimsOnceAfterBusySpell(t *testing.T) {
	const quiet, busy = 4 << 20, 64 << 20
	steps := []uint64{ // bytes allocated in each interval
		1 << 20,  // quiet, but nothing happened since start
		80 << 20, // busy
		80 << 20, // busy
		1 << 20,  // quiet after busy: trim
		1 << 20,  // quiet, already trimmed
		1 << 20,
		70 << 20, // busy
		2 << 20,  // quiet after busy: trim
		30 << 20, // not quiet
		3 << 20,  // quiet, but only 33 MiB since the trim
	}
	var (
		allocated uint64 = 100 << 20 // start-up
		trims     []int
	)
	st := newIdleState(allocated)
	for i, n := range steps {
		allocated += n
		if st.next(allocated, quiet, busy) {
			trims = append(trims, i)
			allocated += 1 << 10 // the collection's own
			st.trimmed(allocated)
		}
	}
	if want := []int{3, 7}; !slices.Equal(trims, want) {
		t.Errorf("trims after intervals %v, want %v", trims, want)
	}
}

// Run trims after a busy spell and stops with its context.
func TestIdleTrimmerRun(t *testing.T) {
	var reads, trims atomic.Uint64
	tr := NewIdleTrimmer(IdleOptions{
		Interval: time.Millisecond,
		// Start-up allocated nothing, the first interval a busy spell,
		// the ones after nothing more.
		allocated: func() uint64 {
			if reads.Add(1) == 1 {
				return 0
			}
			return DefaultBusyBytes + 1
		},
		free: func() { trims.Add(1) },
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tr.Run(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for trims.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if got := trims.Load(); got != 1 {
		t.Errorf("trims = %d, want 1", got)
	}
}
