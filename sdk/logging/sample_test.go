package logging

import (
	"bytes"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is advanced explicitly by the test; no test depends on real time.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

type sampleStep struct {
	advance time.Duration
	level   slog.Level
	msg     string
	n       int
}

func TestSampling(t *testing.T) {
	// The messages used below must not share a hash bucket, or their
	// counts would merge; the hash is fixed, so this is a stable fact.
	if fnv1a("a")%sampleBuckets == fnv1a("b")%sampleBuckets {
		t.Fatal("test messages collide in the sampler")
	}
	info, warn, errl := slog.LevelInfo, slog.LevelWarn, slog.LevelError
	tests := []struct {
		name        string
		sampling    Sampling
		steps       []sampleStep
		wantLogged  map[string]int // message -> records written
		wantDropped uint64
	}{
		{
			name:     "first N then every M-th",
			sampling: Sampling{First: 2, Thereafter: 3, Tick: time.Second},
			steps:    []sampleStep{{level: info, msg: "a", n: 11}},
			// kept: 1, 2, 5, 8, 11
			wantLogged: map[string]int{"a": 5}, wantDropped: 6,
		},
		{
			name:       "messages are counted separately",
			sampling:   Sampling{First: 1, Thereafter: 0, Tick: time.Second},
			steps:      []sampleStep{{level: info, msg: "a", n: 3}, {level: info, msg: "b", n: 3}},
			wantLogged: map[string]int{"a": 1, "b": 1}, wantDropped: 4,
		},
		{
			name:     "new tick resets the count",
			sampling: Sampling{First: 2, Tick: time.Second},
			steps: []sampleStep{
				{level: info, msg: "a", n: 5},
				{advance: time.Second, level: info, msg: "a", n: 5},
			},
			wantLogged: map[string]int{"a": 4}, wantDropped: 6,
		},
		{
			name:     "same tick continues the count",
			sampling: Sampling{First: 2, Tick: time.Minute},
			steps: []sampleStep{
				{level: info, msg: "a", n: 2},
				{advance: time.Second, level: info, msg: "a", n: 2},
			},
			wantLogged: map[string]int{"a": 2}, wantDropped: 2,
		},
		{
			name:     "warnings and errors are never dropped while info is sampled",
			sampling: Sampling{First: 1, Tick: time.Second},
			steps: []sampleStep{
				{level: info, msg: "a", n: 10},
				{level: warn, msg: "a", n: 10},
				{level: errl, msg: "a", n: 10},
				{level: info, msg: "a", n: 1},
			},
			wantLogged: map[string]int{"a": 21}, wantDropped: 10,
		},
		{
			name:       "zero First logs every M-th only",
			sampling:   Sampling{First: 0, Thereafter: 4, Tick: time.Second},
			steps:      []sampleStep{{level: info, msg: "a", n: 8}},
			wantLogged: map[string]int{"a": 2}, wantDropped: 6,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			s := tt.sampling
			s.Now = clock.Now
			var buf bytes.Buffer
			h := NewHandler(&buf, Options{Sampling: &s, Level: slog.LevelDebug})
			// Derived handlers share the counts with the root.
			logger := slog.New(h).With("k", "v")
			for _, st := range tt.steps {
				clock.Advance(st.advance)
				for range st.n {
					logger.Log(t.Context(), st.level, st.msg)
				}
			}
			got := map[string]int{}
			for _, r := range decodeLines(t, &buf) {
				got[r[slog.MessageKey].(string)]++
			}
			for msg, want := range tt.wantLogged {
				if got[msg] != want {
					t.Errorf("message %q logged %d times, want %d", msg, got[msg], want)
				}
			}
			if h.Dropped() != tt.wantDropped {
				t.Errorf("Dropped() = %d, want %d", h.Dropped(), tt.wantDropped)
			}
		})
	}
}

func TestNoSamplingKeepsEverything(t *testing.T) {
	var buf bytes.Buffer
	h := NewHandler(&buf, Options{})
	for range 100 {
		slog.New(h).Info("same")
	}
	if n := len(decodeLines(t, &buf)); n != 100 || h.Dropped() != 0 {
		t.Errorf("logged %d, dropped %d; want 100, 0", n, h.Dropped())
	}
}

func TestSampleCounterWindows(t *testing.T) {
	var c sampleCounter
	for i, tt := range []struct {
		window uint32
		want   uint64
	}{{7, 1}, {7, 2}, {7, 3}, {8, 1}, {8, 2}, {7, 1}, {0, 1}} {
		if got := c.inc(tt.window); got != tt.want {
			t.Errorf("step %d: inc(%d) = %d, want %d", i, tt.window, got, tt.want)
		}
	}
}
