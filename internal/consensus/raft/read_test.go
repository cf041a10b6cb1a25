package raft

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/vigil-observability/vigil/internal/consensus"
	"github.com/vigil-observability/vigil/internal/consensus/consensustest"
)

// A follower cut off from the leader must not pass a read index it has
// not applied; once it hears from the leader again it does, and holds the
// write.
func TestReadIndexWaitsForTheLeadersWrites(t *testing.T) {
	c := newCluster(t, 3, nil)
	l := c.waitLeader(nil, 0, 10*time.Second)
	f := (l + 1) % 3
	if _, err := c.nodes[f].ReadIndex(ctxTimeout(t, time.Second)); !errors.Is(err, consensus.ErrNotLeader) {
		t.Fatalf("ReadIndex on a follower: %v, want ErrNotLeader", err)
	}
	c.propose("a")
	c.waitState(f, []string{"a"}, 10*time.Second)

	c.faults[f].partition()
	c.propose("b")
	var index uint64
	if err := c.onLeader(func(ctx context.Context, n *Node) error {
		var err error
		index, err = n.ReadIndex(ctx)
		return err
	}); err != nil {
		t.Fatalf("ReadIndex on the leader: %v", err)
	}
	short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	err := c.nodes[f].WaitApplied(short, index)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cut-off follower's WaitApplied(%d): %v, want a deadline error", index, err)
	}
	if got := c.sms[f].Commands(); slices.Contains(got, "b") {
		t.Fatalf("cut-off follower applied %v", got)
	}

	c.faults[f].heal()
	if err := c.nodes[f].WaitApplied(ctxTimeout(t, 10*time.Second), index); err != nil {
		t.Fatalf("healed follower's WaitApplied(%d): %v", index, err)
	}
	if got := c.sms[f].Commands(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("after WaitApplied the follower holds %v, want [a b]", got)
	}
}

// A node that caught up from a snapshot knows which command the snapshot
// ends with, so it passes the leader's read index without a newer command.
func TestReadIndexAfterSnapshotRestore(t *testing.T) {
	c := newCluster(t, 3, func(o *Options) {
		o.SnapshotThreshold = 5
		o.TrailingLogs = 2
	})
	l := c.waitLeader(nil, 0, 10*time.Second)
	f := (l + 1) % 3
	c.stop(f)
	c.propose(consensustest.Numbered("a", 20)...)
	if err := c.onLeader(func(ctx context.Context, n *Node) error {
		if n.raft.State() != hraft.Leader {
			return consensus.ErrNotLeader
		}
		return n.Snapshot(ctx)
	}); err != nil {
		t.Fatal(err)
	}
	c.start(f)
	var index uint64
	if err := c.onLeader(func(ctx context.Context, n *Node) error {
		var err error
		index, err = n.ReadIndex(ctx)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.nodes[f].WaitApplied(ctxTimeout(t, 10*time.Second), index); err != nil {
		t.Fatalf("WaitApplied(%d) after the restart: %v", index, err)
	}
	if got := c.sms[f].Restores(); got == 0 {
		t.Errorf("the restarted follower caught up without a snapshot; the test did not test restore")
	}
	if got := c.sms[f].Commands(); len(got) != 20 {
		t.Errorf("restarted follower holds %d commands, want 20", len(got))
	}
}

// The snapshot carries the last command's index; one written before it
// did falls back to the newest snapshot's index, never to less.
func TestSnapshotCarriesAppliedIndex(t *testing.T) {
	src := newFSM(&consensustest.Recorder{}, nil)
	for i, cmd := range []string{"x", "y"} {
		src.Apply(&hraft.Log{Index: uint64(10 + i), Data: []byte(cmd)})
	}
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := snap.Persist(&memSink{Buffer: &buf}); err != nil {
		t.Fatal(err)
	}
	legacy := new(bytes.Buffer)
	write, _ := (&consensustest.Recorder{}).Snapshot()
	if err := write(legacy); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		data []byte
		want uint64
	}{
		{"with header", buf.Bytes(), 11},
		{"before the header", legacy.Bytes(), 42},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := newFSM(&consensustest.Recorder{}, func() uint64 { return 42 })
			if err := dst.Restore(io.NopCloser(bytes.NewReader(tc.data))); err != nil {
				t.Fatal(err)
			}
			if got, _ := dst.appliedIndex(); got != tc.want {
				t.Errorf("applied index after restore %d, want %d", got, tc.want)
			}
		})
	}
}

type memSink struct{ *bytes.Buffer }

func (memSink) ID() string    { return "mem" }
func (memSink) Cancel() error { return nil }
func (memSink) Close() error  { return nil }

// Raft tells followers of a commit with the next entries, or after
// CommitTimeout without any; the leader's barrier after each command
// makes them apply it within a round trip instead.
func TestFollowersApplyACommandWithoutWaitingForCommitTimeout(t *testing.T) {
	c := newCluster(t, 3, func(o *Options) { o.CommitTimeout = 5 * time.Second })
	c.waitLeader(nil, 0, 10*time.Second)
	for _, cmd := range []string{"a", "b", "c"} {
		start := time.Now()
		c.propose(cmd)
		var index uint64
		if err := c.onLeader(func(ctx context.Context, n *Node) error {
			index = n.AppliedIndex()
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		for i, n := range c.nodes {
			if err := n.WaitApplied(ctxTimeout(t, 2*time.Second), index); err != nil {
				t.Fatalf("%s did not apply %q within 2s of its proposal (commit timeout 5s): %v", c.opts[i].NodeID, cmd, err)
			}
		}
		t.Logf("%q applied on every node %s after its proposal", cmd, time.Since(start).Round(time.Millisecond))
	}
}
