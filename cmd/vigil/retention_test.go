package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/vigil-observability/vigil/internal/storage"
)

// fakeRetainer records the cut-offs it was asked to drop before.
type fakeRetainer struct {
	mu   sync.Mutex
	cuts []time.Time
	err  error
}

func (f *fakeRetainer) DropBefore(_ context.Context, t time.Time) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cuts = append(f.cuts, t)
	return 1, f.err
}

func (f *fakeRetainer) calls() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.cuts...)
}

// Every store is asked to drop what lies before now - Keep at once and at
// each round after; one store failing does not stop the others or the
// next round; the loop ends with its context.
func TestRunRetention(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	ok, failing := &fakeRetainer{}, &fakeRetainer{err: errors.New("shard down")}
	rounds := make(chan struct{}, 10)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		runRetention(ctx, retentionOptions{
			Retainers: map[string]storage.Retainer{"ok": ok, "failing": failing},
			Keep:      48 * time.Hour,
			Every:     time.Millisecond,
			Now:       func() time.Time { return now },
			Rounded: func() {
				select {
				case rounds <- struct{}{}:
				default: // the test has seen enough rounds
				}
			},
			Logger: slog.New(slog.DiscardHandler),
		})
	}()
	for range 2 {
		select {
		case <-rounds:
		case <-time.After(10 * time.Second):
			t.Fatal("no retention round within 10s")
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("runRetention still running 10s after its context ended")
	}
	want := now.Add(-48 * time.Hour)
	for name, r := range map[string]*fakeRetainer{"ok": ok, "failing": failing} {
		cuts := r.calls()
		if len(cuts) < 2 {
			t.Errorf("%s: %d rounds, want at least 2", name, len(cuts))
		}
		for _, c := range cuts {
			if !c.Equal(want) {
				t.Errorf("%s: dropped before %v, want %v", name, c, want)
			}
		}
	}
}
