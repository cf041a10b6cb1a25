// Package fanout delivers a backend's changes to the readers of the
// consensus interfaces: [Latest] for a value whose readers only need the
// newest state (consensus.Leadership.WatchLeader), [Subscribers] for a
// sequence every reader must see in order or not at all
// (consensus.Replicated.Subscribe). Both are shared by every backend so
// that they keep the same contract.
package fanout

import (
	"sync"

	"github.com/vigil-observability/vigil/internal/consensus"
)

// Latest holds a value and delivers it to watchers, latest value wins: a
// watcher's channel holds at most one value, and a new one replaces it if
// the watcher has not read it yet. Set never blocks. Safe for concurrent
// use.
type Latest[T comparable] struct {
	mu       sync.Mutex
	last     T
	stale    func(last, next T) bool
	watchers map[chan T]struct{}
	closed   bool
}

// NewLatest starts at initial. Set ignores a value for which stale (when
// not nil) reports true against the one held.
func NewLatest[T comparable](initial T, stale func(last, next T) bool) *Latest[T] {
	return &Latest[T]{last: initial, stale: stale, watchers: make(map[chan T]struct{})}
}

// Get is the value held.
func (l *Latest[T]) Get() T {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// Set holds v and offers it to every watcher, unless it equals the value
// held or is stale.
func (l *Latest[T]) Set(v T) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if v == l.last || (l.stale != nil && l.stale(l.last, v)) {
		return
	}
	l.last = v
	for ch := range l.watchers {
		// Only Set sends, under mu, so after the drain there is room.
		select {
		case <-ch:
		default:
		}
		ch <- v
	}
}

// Watch delivers the value held and then each change. cancel closes the
// channel; so does Close. After Close, Watch returns a closed channel.
func (l *Latest[T]) Watch() (changes <-chan T, cancel func()) {
	ch := make(chan T, 1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		close(ch)
		return ch, func() {}
	}
	ch <- l.last
	l.watchers[ch] = struct{}{}
	return ch, func() { remove(&l.mu, l.watchers, ch) }
}

// Close closes every watcher's channel; later Sets reach nobody.
func (l *Latest[T]) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	closeAll(l.watchers)
}

// StaleLeader is the rule consensus.Leadership.WatchLeader promises: a
// watcher never reads a term older than one already delivered, so a stale
// read of the leader racing a newer one must not undo it. A LeaderInfo
// without a leader (an election under way) is never stale.
func StaleLeader(last, next consensus.LeaderInfo) bool {
	return next.ID != "" && next.Term < last.Term
}

// Subscribers delivers a sequence of values to subscribers, in order.
// Publish never blocks: the producer (the log) must not wait for a slow
// subscriber, so one whose buffer is full is dropped and learns it from its
// closed channel. Safe for concurrent use.
type Subscribers[T any] struct {
	mu     sync.Mutex
	subs   map[chan T]struct{}
	closed bool
}

// NewSubscribers has no subscribers yet.
func NewSubscribers[T any]() *Subscribers[T] {
	return &Subscribers[T]{subs: make(map[chan T]struct{})}
}

// Publish delivers v to every subscriber with room for it and drops (and
// closes) every other one.
func (s *Subscribers[T]) Publish(v T) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch := range s.subs {
		select {
		case ch <- v:
		default:
			delete(s.subs, ch)
			close(ch)
		}
	}
}

// Subscribe delivers each value published after the call; buffer (at least
// 1) is how many may wait unread before the subscriber is dropped. cancel
// closes the channel; so does Close. After Close, Subscribe returns a
// closed channel.
func (s *Subscribers[T]) Subscribe(buffer int) (values <-chan T, cancel func()) {
	ch := make(chan T, max(buffer, 1))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		close(ch)
		return ch, func() {}
	}
	s.subs[ch] = struct{}{}
	return ch, func() { remove(&s.mu, s.subs, ch) }
}

// Close closes every subscriber's channel; later Publishes reach nobody.
func (s *Subscribers[T]) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	closeAll(s.subs)
}

// remove closes ch unless Publish or Close already did.
func remove[T any](mu *sync.Mutex, set map[chan T]struct{}, ch chan T) {
	mu.Lock()
	defer mu.Unlock()
	if _, ok := set[ch]; ok {
		delete(set, ch)
		close(ch)
	}
}

func closeAll[T any](set map[chan T]struct{}) {
	for ch := range set {
		delete(set, ch)
		close(ch)
	}
}
