package etcd

import (
	"sync"

	"github.com/vigil-observability/vigil/internal/consensus"
)

// hub fans applied changes out to subscribers. publish never blocks: the
// log must not wait for a slow subscriber, so one that is full is dropped
// and learns it from its closed channel.
type hub struct {
	mu     sync.Mutex
	subs   map[chan consensus.Applied]struct{}
	closed bool
}

func (h *hub) init() { h.subs = make(map[chan consensus.Applied]struct{}) }

func (h *hub) publish(a consensus.Applied) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- a:
		default:
			delete(h.subs, ch)
			close(ch)
		}
	}
}

func (h *hub) subscribe(buffer int) (<-chan consensus.Applied, func()) {
	ch := make(chan consensus.Applied, max(buffer, 1))
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		close(ch)
		return ch, func() {}
	}
	h.subs[ch] = struct{}{}
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.subs[ch]; ok {
			delete(h.subs, ch)
			close(ch)
		}
	}
}

func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for ch := range h.subs {
		delete(h.subs, ch)
		close(ch)
	}
}

// leaderHub fans LeaderInfo out to watchers, latest value wins. observed
// is the leader as last read from etcd, before this node's own view is
// added to it.
type leaderHub struct {
	mu       sync.Mutex
	last     consensus.LeaderInfo
	observed observed
	watchers map[chan consensus.LeaderInfo]struct{}
	closed   bool
}

func (h *leaderHub) init(info consensus.LeaderInfo) {
	h.last = info
	h.watchers = make(map[chan consensus.LeaderInfo]struct{})
}

func (h *leaderHub) get() consensus.LeaderInfo {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last
}

func (h *leaderHub) set(info consensus.LeaderInfo) {
	h.mu.Lock()
	defer h.mu.Unlock()
	// A watcher never reads a term older than one delivered; a stale read
	// of etcd racing a newer one must not undo it.
	if info == h.last || (info.Term < h.last.Term && info.ID != "") {
		return
	}
	h.last = info
	for ch := range h.watchers {
		offer(ch, info)
	}
}

// offer replaces whatever the reader has not taken yet.
func offer(ch chan consensus.LeaderInfo, info consensus.LeaderInfo) {
	select {
	case <-ch:
	default:
	}
	ch <- info
}

func (h *leaderHub) watch() (<-chan consensus.LeaderInfo, func()) {
	ch := make(chan consensus.LeaderInfo, 1)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		close(ch)
		return ch, func() {}
	}
	ch <- h.last
	h.watchers[ch] = struct{}{}
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.watchers[ch]; ok {
			delete(h.watchers, ch)
			close(ch)
		}
	}
}

func (h *leaderHub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for ch := range h.watchers {
		delete(h.watchers, ch)
		close(ch)
	}
}
