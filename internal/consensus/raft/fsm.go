package raft

import (
	"io"
	"sync"

	hraft "github.com/hashicorp/raft"

	"github.com/vigil-observability/vigil/internal/consensus"
)

// fsm adapts a consensus.StateMachine to raft's FSM and fans applied
// changes out to subscribers.
type fsm struct {
	sm consensus.StateMachine

	mu     sync.Mutex
	subs   map[chan consensus.Applied]struct{}
	closed bool
}

var (
	_ hraft.FSM         = (*fsm)(nil)
	_ hraft.FSMSnapshot = fsmSnapshot(nil)
)

func newFSM(sm consensus.StateMachine) *fsm {
	return &fsm{sm: sm, subs: make(map[chan consensus.Applied]struct{})}
}

// fsmResponse carries Apply's result through raft's untyped response.
type fsmResponse struct {
	result []byte
	err    error
}

func (f *fsm) Apply(l *hraft.Log) any {
	res, err := f.sm.Apply(l.Data)
	f.publish(consensus.Applied{Index: l.Index, Term: l.Term, Cmd: l.Data})
	return fsmResponse{result: res, err: err}
}

func (f *fsm) Snapshot() (hraft.FSMSnapshot, error) {
	write, err := f.sm.Snapshot()
	if err != nil {
		return nil, err
	}
	return fsmSnapshot(write), nil
}

func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	if err := f.sm.Restore(rc); err != nil {
		return err
	}
	f.publish(consensus.Applied{Restored: true})
	return nil
}

type fsmSnapshot consensus.SnapshotFunc

func (s fsmSnapshot) Persist(sink hraft.SnapshotSink) error {
	if err := s(sink); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s fsmSnapshot) Release() {}

// publish never blocks: the log must not wait for a slow subscriber, so
// one that is full is dropped and learns it from its closed channel.
func (f *fsm) publish(a consensus.Applied) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch := range f.subs {
		select {
		case ch <- a:
		default:
			delete(f.subs, ch)
			close(ch)
		}
	}
}

func (f *fsm) subscribe(buffer int) (<-chan consensus.Applied, func()) {
	ch := make(chan consensus.Applied, max(buffer, 1))
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		close(ch)
		return ch, func() {}
	}
	f.subs[ch] = struct{}{}
	return ch, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.subs[ch]; ok {
			delete(f.subs, ch)
			close(ch)
		}
	}
}

func (f *fsm) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for ch := range f.subs {
		delete(f.subs, ch)
		close(ch)
	}
}
