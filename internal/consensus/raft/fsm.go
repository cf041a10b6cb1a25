package raft

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	hraft "github.com/hashicorp/raft"

	"github.com/vigil-observability/vigil/internal/consensus"
	"github.com/vigil-observability/vigil/internal/consensus/fanout"
)

// fsm adapts a consensus.StateMachine to raft's FSM and fans applied
// changes out to subscribers.
//
// It also keeps the index of the last command the state machine holds,
// which is what a linearizable read waits for (Node.WaitApplied). Raft's
// own AppliedIndex will not do: it moves when entries are handed to the
// FSM's goroutine, before they are applied, and it counts entries the
// state machine never sees (no-ops, barriers, configurations), so a
// follower could wait on one of those forever. Command indexes are the
// same on every node.
type fsm struct {
	sm   consensus.StateMachine
	subs *fanout.Subscribers[consensus.Applied]
	// lastSnapshotIndex is where a snapshot written before snapshots
	// carried the command index ends: the newest in the store.
	lastSnapshotIndex func() uint64

	mu      sync.Mutex
	applied uint64        // index of the last command in the state machine
	moved   chan struct{} // closed (and replaced) when applied moves
}

var (
	_ hraft.FSM         = (*fsm)(nil)
	_ hraft.FSMSnapshot = fsmSnapshot{}
)

func newFSM(sm consensus.StateMachine, lastSnapshotIndex func() uint64) *fsm {
	return &fsm{
		sm: sm, subs: fanout.NewSubscribers[consensus.Applied](),
		lastSnapshotIndex: lastSnapshotIndex, moved: make(chan struct{}),
	}
}

// fsmResponse carries Apply's result through raft's untyped response.
type fsmResponse struct {
	result []byte
	err    error
}

func (f *fsm) Apply(l *hraft.Log) any {
	res, err := f.sm.Apply(l.Data)
	f.setApplied(l.Index)
	f.subs.Publish(consensus.Applied{Index: l.Index, Term: l.Term, Cmd: l.Data})
	return fsmResponse{result: res, err: err}
}

func (f *fsm) setApplied(index uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = index
	close(f.moved)
	f.moved = make(chan struct{})
}

// appliedIndex is the last command's index and a channel closed when it
// next moves.
func (f *fsm) appliedIndex() (uint64, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applied, f.moved
}

// waitApplied returns once the state machine holds the command at index
// (or a later one), or when ctx or stop ends.
func (f *fsm) waitApplied(ctx context.Context, index uint64, stop <-chan struct{}) error {
	for {
		applied, moved := f.appliedIndex()
		if applied >= index {
			return nil
		}
		select {
		case <-moved:
		case <-stop:
			return consensus.ErrClosed
		case <-ctx.Done():
			return fmt.Errorf("raft: applied up to %d, waiting for %d: %w", applied, index, ctx.Err())
		}
	}
}

// snapshotHeader starts a snapshot that carries the index of the last
// command in it, ahead of the state machine's own bytes.
var snapshotHeader = []byte("vigil-raft-fsm/1\n")

func (f *fsm) Snapshot() (hraft.FSMSnapshot, error) {
	write, err := f.sm.Snapshot()
	if err != nil {
		return nil, err
	}
	// Raft calls Snapshot between Applies, so this is the index the
	// captured state is at.
	applied, _ := f.appliedIndex()
	return fsmSnapshot{write: write, index: applied}, nil
}

func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	br := bufio.NewReader(rc)
	index, err := readSnapshotHeader(br)
	if err != nil {
		return err
	}
	if index == nil {
		// Written before snapshots carried the index: the newest
		// snapshot's end is at or after its last command, which makes
		// reads wait at worst until the next command, never too little.
		last := f.lastSnapshotIndex()
		index = &last
	}
	if err := f.sm.Restore(br); err != nil {
		return err
	}
	f.setApplied(*index)
	f.subs.Publish(consensus.Applied{Restored: true})
	return nil
}

// readSnapshotHeader reads the header if the snapshot has one; nil: it
// has none and br is left at its start.
func readSnapshotHeader(br *bufio.Reader) (*uint64, error) {
	head, err := br.Peek(len(snapshotHeader))
	if err != nil || !bytes.Equal(head, snapshotHeader) {
		// Too short for a header is the state machine's to refuse.
		return nil, nil
	}
	_, _ = br.Discard(len(snapshotHeader))
	index, err := binary.ReadUvarint(br)
	if err != nil {
		return nil, fmt.Errorf("raft: snapshot header: %w", err)
	}
	return &index, nil
}

type fsmSnapshot struct {
	write consensus.SnapshotFunc
	index uint64
}

func (s fsmSnapshot) Persist(sink hraft.SnapshotSink) error {
	err := func() error {
		bw := bufio.NewWriter(sink)
		_, _ = bw.Write(snapshotHeader)
		_, _ = bw.Write(binary.AppendUvarint(nil, s.index))
		if err := s.write(bw); err != nil {
			return err
		}
		return bw.Flush()
	}()
	if err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s fsmSnapshot) Release() {}
