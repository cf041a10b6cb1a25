package raft

import (
	"io"

	hraft "github.com/hashicorp/raft"

	"github.com/vigil-observability/vigil/internal/consensus"
	"github.com/vigil-observability/vigil/internal/consensus/fanout"
)

// fsm adapts a consensus.StateMachine to raft's FSM and fans applied
// changes out to subscribers.
type fsm struct {
	sm   consensus.StateMachine
	subs *fanout.Subscribers[consensus.Applied]
}

var (
	_ hraft.FSM         = (*fsm)(nil)
	_ hraft.FSMSnapshot = fsmSnapshot(nil)
)

func newFSM(sm consensus.StateMachine) *fsm {
	return &fsm{sm: sm, subs: fanout.NewSubscribers[consensus.Applied]()}
}

// fsmResponse carries Apply's result through raft's untyped response.
type fsmResponse struct {
	result []byte
	err    error
}

func (f *fsm) Apply(l *hraft.Log) any {
	res, err := f.sm.Apply(l.Data)
	f.subs.Publish(consensus.Applied{Index: l.Index, Term: l.Term, Cmd: l.Data})
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
	f.subs.Publish(consensus.Applied{Restored: true})
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
