// Package consensustest has an in-process stand-in for a consensus backend,
// for the tests of its consumers (a replicated store, a leader-only
// evaluator): one node, no network, and leadership that the test takes away
// and gives back when it wants, so fencing can be tested without timing.
package consensustest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/vigil-observability/vigil/internal/consensus"
	"github.com/vigil-observability/vigil/internal/consensus/fanout"
)

// Memory is one node that applies each proposal at once, in the order
// Propose is called. It leads from the start, in term 1. Safe for
// concurrent use.
type Memory struct {
	mu     sync.Mutex
	sm     consensus.StateMachine
	id     string
	term   uint64
	leader bool
	index  uint64
	subs   *fanout.Subscribers[consensus.Applied]
	watch  *fanout.Latest[consensus.LeaderInfo]
}

var (
	_ consensus.Leadership  = (*Memory)(nil)
	_ consensus.Replicated  = (*Memory)(nil)
	_ consensus.Membership  = (*Memory)(nil)
	_ consensus.ReadIndexer = (*Memory)(nil)
)

// NewMemory returns a node named "n1" leading over sm.
func NewMemory(sm consensus.StateMachine) *Memory {
	m := &Memory{sm: sm, id: "n1", term: 1, leader: true, subs: fanout.NewSubscribers[consensus.Applied]()}
	m.watch = fanout.NewLatest(m.infoLocked(), fanout.StaleLeader)
	return m
}

// otherLeader is who leads while this node is deposed.
const otherLeader = "other"

// Depose makes another node the leader in a new term, as if this one had
// been partitioned away and replaced: from now on Fence, Propose and
// Barrier fail with a NotLeaderError.
func (m *Memory) Depose() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.term++
	m.leader = false
	m.notifyLocked()
}

// Elect makes this node the leader again, in a new term.
func (m *Memory) Elect() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.term++
	m.leader = true
	m.notifyLocked()
}

func (m *Memory) infoLocked() consensus.LeaderInfo {
	if m.leader {
		return consensus.LeaderInfo{ID: m.id, Address: m.id, Term: m.term, Self: true}
	}
	return consensus.LeaderInfo{ID: otherLeader, Address: otherLeader, Term: m.term}
}

func (m *Memory) notLeaderLocked() error {
	return &consensus.NotLeaderError{LeaderID: otherLeader, LeaderAddress: otherLeader}
}

// notifyLocked gives every watcher the latest LeaderInfo, replacing one it
// has not read yet.
func (m *Memory) notifyLocked() { m.watch.Set(m.infoLocked()) }

// Fence implements consensus.Fencer.
func (m *Memory) Fence(ctx context.Context) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.leader {
		return 0, m.notLeaderLocked()
	}
	return m.term, nil
}

// Campaign implements consensus.Leadership: it waits for Elect.
func (m *Memory) Campaign(ctx context.Context) (uint64, error) {
	changes, cancel := m.WatchLeader()
	defer cancel()
	for {
		select {
		case info := <-changes:
			if info.Self {
				return info.Term, nil
			}
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// Resign implements consensus.Leadership, as Depose.
func (m *Memory) Resign(context.Context) error {
	m.mu.Lock()
	leader := m.leader
	m.mu.Unlock()
	if leader {
		m.Depose()
	}
	return nil
}

// Leader implements consensus.Leadership.
func (m *Memory) Leader() consensus.LeaderInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.infoLocked()
}

// WatchLeader implements consensus.Leadership.
func (m *Memory) WatchLeader() (<-chan consensus.LeaderInfo, func()) {
	return m.watch.Watch()
}

// Propose implements consensus.Replicated.
func (m *Memory) Propose(ctx context.Context, cmd []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.leader {
		return nil, m.notLeaderLocked()
	}
	// A copy, as a real log's entry would be: the caller may reuse cmd.
	cmd = bytes.Clone(cmd)
	res, err := m.sm.Apply(cmd)
	m.index++
	m.publishLocked(consensus.Applied{Index: m.index, Term: m.term, Cmd: cmd})
	return res, err
}

// Barrier implements consensus.Replicated; every proposal is applied by
// the time Propose returns, so it only checks leadership.
func (m *Memory) Barrier(ctx context.Context) error {
	_, err := m.Fence(ctx)
	return err
}

// ReadIndex implements consensus.ReadIndexer: on the leader the index of
// the last proposal, which is applied; deposed, a NotLeaderError, as a
// raft follower answers.
func (m *Memory) ReadIndex(ctx context.Context) (uint64, error) {
	if _, err := m.Fence(ctx); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.index, nil
}

// WaitApplied implements consensus.ReadIndexer. Every index this node
// handed out is applied; a later one was never proposed here, so it fails
// at once rather than wait for nothing.
func (m *Memory) WaitApplied(ctx context.Context, index uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if index > m.index {
		return fmt.Errorf("consensustest: index %d was never proposed (last %d)", index, m.index)
	}
	return nil
}

// AppliedIndex is the index of the last proposal, applied by now.
func (m *Memory) AppliedIndex() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.index
}

// Subscribe implements consensus.Replicated.
func (m *Memory) Subscribe(buffer int) (<-chan consensus.Applied, func()) {
	return m.subs.Subscribe(buffer)
}

func (m *Memory) publishLocked(a consensus.Applied) { m.subs.Publish(a) }

// Restart runs the state machine through a snapshot, as a node restarting
// from one would: Snapshot, then Restore of what it wrote. Subscribers see
// a restore.
func (m *Memory) Restart() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	write, err := m.sm.Snapshot()
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := write(&buf); err != nil {
		return err
	}
	if err := m.sm.Restore(&buf); err != nil {
		return err
	}
	m.publishLocked(consensus.Applied{Restored: true})
	return nil
}

// Status implements consensus.Membership: one member, this node.
func (m *Memory) Status(context.Context) (consensus.Status, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	info := m.infoLocked()
	state := consensus.StateFollower
	if m.leader {
		state = consensus.StateLeader
	}
	return consensus.Status{Leader: info.ID, Term: m.term, Members: []consensus.Member{{
		ID: m.id, Address: m.id, State: state, Voter: true,
		CommitIndex: m.index, AppliedIndex: m.index, Local: true,
	}}}, nil
}

// Join implements consensus.Membership; the stand-in has one node only.
func (m *Memory) Join(context.Context, consensus.Peer) error { return errOneNode }

// Remove implements consensus.Membership; the stand-in has one node only.
func (m *Memory) Remove(context.Context, string) error { return errOneNode }

var errOneNode = errors.New("consensustest: the in-process stand-in has one node")
