package logging

import (
	"math"
	"sync/atomic"
	"time"
)

// Sampling limits the volume of repetitive records. Within each Tick, for
// each distinct message text, the first First records are logged and after
// that every Thereafter-th one; the rest are dropped and counted (see
// [Handler.Dropped]). Records at [slog.LevelWarn] and above are never
// sampled: the point of sampling is to survive a hot loop of Info/Debug
// lines, never to lose a warning or an error.
type Sampling struct {
	// First is how many records per message per tick are always logged.
	First int
	// Thereafter logs every Thereafter-th record after the first First ones.
	// Zero or negative drops every record past First.
	Thereafter int
	// Tick is the length of the windows in which messages are counted;
	// windows are aligned to multiples of Tick since the Unix epoch. Zero
	// means one second.
	Tick time.Duration
	// Now is the clock used to find the current tick; nil means time.Now.
	// Tests inject a fake clock here.
	Now func() time.Time
}

// sampleBuckets bounds the sampler's memory whatever the number of distinct
// messages (dynamic messages built with fmt.Sprintf would otherwise grow a
// map without limit). Messages whose hashes collide share a count, which only
// makes sampling slightly more aggressive for them.
const sampleBuckets = 4096

// sampler holds lock-free per-bucket counters so that sampling adds no
// contention between goroutines logging different messages.
type sampler struct {
	first      uint64
	thereafter uint64
	tick       int64
	now        func() time.Time
	counters   [sampleBuckets]sampleCounter
}

// sampleCounter packs the window number (high 32 bits) and the count within
// that window (low 32 bits) into one word, so a record is counted in exactly
// one window even when goroutines race across a window boundary.
type sampleCounter struct {
	state atomic.Uint64
}

func newSampler(s Sampling) *sampler {
	sm := &sampler{
		first:      uint64(max(s.First, 0)),
		thereafter: uint64(max(s.Thereafter, 0)),
		tick:       int64(s.Tick),
		now:        s.Now,
	}
	if sm.tick <= 0 {
		sm.tick = int64(time.Second)
	}
	if sm.now == nil {
		sm.now = time.Now
	}
	return sm
}

// keep counts one record with the given message and reports whether it is
// to be logged.
func (s *sampler) keep(msg string) bool {
	window := uint32(s.now().UnixNano() / s.tick)
	n := s.counters[fnv1a(msg)%sampleBuckets].inc(window)
	if n <= s.first {
		return true
	}
	return s.thereafter > 0 && (n-s.first)%s.thereafter == 0
}

// inc returns the record's position within window, starting the count again
// when the window has changed. Windows are aligned to multiples of the tick;
// their number wraps at 2^32, which only matters to a process that stays
// silent for exactly 2^32 ticks. The count saturates rather than wrapping.
func (c *sampleCounter) inc(window uint32) uint64 {
	for {
		old := c.state.Load()
		next := uint64(window)<<32 | 1
		if uint32(old>>32) == window {
			if uint32(old) == math.MaxUint32 {
				return math.MaxUint32
			}
			next = old + 1
		}
		if c.state.CompareAndSwap(old, next) {
			return uint64(uint32(next))
		}
	}
}

// fnv1a hashes the message without allocating. A fixed (unseeded) hash keeps
// bucket assignment reproducible, which makes sampling behaviour testable.
func fnv1a(s string) uint64 {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	for i := range len(s) {
		h ^= uint64(s[i])
		h *= prime
	}
	return h
}
