package raft

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"
	"go.uber.org/goleak"

	"github.com/vigil-observability/vigil/internal/consensus"
	"github.com/vigil-observability/vigil/internal/consensus/consensustest"
	"github.com/vigil-observability/vigil/internal/testport"
)

// Every node a test opens is closed by then, and Close must stop all of
// raft's goroutines.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestThreeNodesElectOneLeader(t *testing.T) {
	start := time.Now()
	c := newCluster(t, 3, nil)
	l := c.waitLeader(nil, 0, 10*time.Second)
	t.Logf("election: %s from start to a leader all three agree on", time.Since(start).Round(time.Millisecond))

	info := c.nodes[l].Leader()
	for i, n := range c.nodes {
		got := n.Leader()
		if got.Self != (i == l) {
			t.Errorf("%s: Self = %v, leader is %s", c.opts[i].NodeID, got.Self, info.ID)
		}
		if got.Address != c.opts[l].BindAddr {
			t.Errorf("%s: leader address %q, want %q", c.opts[i].NodeID, got.Address, c.opts[l].BindAddr)
		}
	}
	token, err := c.nodes[l].Fence(ctxTimeout(t, 10*time.Second))
	if err != nil {
		t.Fatalf("fence on the leader: %v", err)
	}
	if token == 0 || token > c.nodes[l].Leader().Term {
		t.Errorf("token %d, leader's term %d", token, c.nodes[l].Leader().Term)
	}
	for i := range c.nodes {
		if i == l {
			continue
		}
		if _, err := c.nodes[i].Fence(ctxTimeout(t, time.Second)); !errors.Is(err, consensus.ErrNotLeader) {
			t.Errorf("fence on follower %s: %v, want ErrNotLeader", c.opts[i].NodeID, err)
		}
	}

	st, err := c.nodes[l].Status(ctxTimeout(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if st.Leader != info.ID || len(st.Members) != 3 {
		t.Fatalf("status %+v", st)
	}
	for _, m := range st.Members {
		if m.Local != (m.ID == info.ID) || (m.ID == info.ID && m.State != consensus.StateLeader) || !m.Voter {
			t.Errorf("member %+v", m)
		}
		if m.Local && (m.CommitIndex == 0 || m.AppliedIndex == 0) {
			t.Errorf("leader's indexes: %+v", m)
		}
	}
}

func TestProposeAppliesInOrderOnEveryNode(t *testing.T) {
	c := newCluster(t, 3, nil)
	l := c.waitLeader(nil, 0, 10*time.Second)

	applied, cancel := c.nodes[(l+1)%3].Subscribe(200)
	defer cancel()

	// Concurrent proposals: the log, not the callers, decides the order, and
	// each caller gets its own command's position back.
	const n = 40
	results := make([]int, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			res, err := c.proposeRetry("c" + strconv.Itoa(i))
			if err != nil {
				errs <- err
				return
			}
			results[i], err = strconv.Atoi(string(res))
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var order []string
	if err := c.onLeader(func(ctx context.Context, n *Node) error {
		// After a barrier the leader's state holds everything proposed.
		if err := n.Barrier(ctx); err != nil {
			return err
		}
		order = c.sms[slices.Index(c.nodes, n)].Commands()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(order) != n {
		t.Fatalf("leader holds %d commands after a barrier, want %d", len(order), n)
	}
	for i, pos := range results {
		if order[pos-1] != "c"+strconv.Itoa(i) {
			t.Errorf("Propose of c%d returned position %d, which holds %s", i, pos, order[pos-1])
		}
	}
	for i := range c.nodes {
		c.waitState(i, order, 10*time.Second)
	}

	// A follower's subscriber saw the same commands in the same order (a
	// command retried after a lost leader can be in the log twice).
	var seen []string
	var lastIndex uint64
	for len(seen) < n {
		select {
		case a, ok := <-applied:
			if !ok {
				t.Fatalf("subscription closed after %d changes", len(seen))
			}
			if a.Index <= lastIndex {
				t.Errorf("index %d after %d", a.Index, lastIndex)
			}
			lastIndex = a.Index
			if !slices.Contains(seen, string(a.Cmd)) {
				seen = append(seen, string(a.Cmd))
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("subscriber saw %d of %d changes", len(seen), n)
		}
	}
	if !slices.Equal(seen, order) {
		t.Errorf("subscriber saw %v, state holds %v", seen, order)
	}

	// The state machine's own error comes back as it was returned.
	if _, err := c.proposeRetry("fail"); !errors.Is(err, consensustest.ErrRefused) {
		t.Errorf("propose of a refused command: %v, want the state machine's error", err)
	}
}

func TestSlowSubscriberIsDropped(t *testing.T) {
	c := newCluster(t, 1, nil)
	l := c.waitLeader(nil, 0, 10*time.Second)
	slow, cancelSlow := c.nodes[l].Subscribe(2)
	defer cancelSlow()
	c.propose(consensustest.Numbered("x", 5)...)
	var got int
	timeout := time.After(5 * time.Second)
	for open := true; open; {
		select {
		case _, open = <-slow:
			if open {
				got++
			}
		case <-timeout:
			t.Fatal("a full subscription was not closed")
		}
	}
	if got != 2 {
		t.Errorf("a subscriber with room for 2 received %d before being dropped", got)
	}
	// The log went on without it.
	if n := len(c.sms[l].Commands()); n != 5 {
		t.Errorf("applied %d, want 5", n)
	}
}

func TestFollowerProposeReturnsLeader(t *testing.T) {
	c := newCluster(t, 3, nil)
	l := c.waitLeader(nil, 0, 10*time.Second)
	f := (l + 1) % 3
	calls := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"propose", func(ctx context.Context) error { _, err := c.nodes[f].Propose(ctx, []byte("x")); return err }},
		{"barrier", c.nodes[f].Barrier},
		{"join", func(ctx context.Context) error {
			return c.nodes[f].Join(ctx, consensus.Peer{ID: "n9", Address: "127.0.0.1:1"})
		}},
		{"remove", func(ctx context.Context) error { return c.nodes[f].Remove(ctx, "n1") }},
	}
	for _, tc := range calls {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call(ctxTimeout(t, 5*time.Second))
			var nl *consensus.NotLeaderError
			if !errors.Is(err, consensus.ErrNotLeader) || !errors.As(err, &nl) {
				t.Fatalf("got %v, want a NotLeaderError", err)
			}
			if nl.LeaderID != c.opts[l].NodeID || nl.LeaderAddress != c.opts[l].BindAddr {
				t.Errorf("error names %s at %s, leader is %s at %s", nl.LeaderID, nl.LeaderAddress, c.opts[l].NodeID, c.opts[l].BindAddr)
			}
		})
	}
	if n := len(c.sms[f].Commands()); n != 0 {
		t.Errorf("follower's refused proposal was applied: %d commands", n)
	}
}

func TestLeaderShutdownElectsNewLeaderWithHigherTerm(t *testing.T) {
	c := newCluster(t, 3, nil)
	old := c.waitLeader(nil, 0, 10*time.Second)
	oldToken, err := c.nodes[old].Fence(ctxTimeout(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	c.propose("before")

	follower := (old + 1) % 3
	changes, cancel := c.nodes[follower].WatchLeader()
	defer cancel()
	checkTerms := c.recordLeaders()

	start := time.Now()
	c.stop(old)
	c.waitLeader(nil, oldToken, 10*time.Second)
	t.Logf("failover: %s from the leader's shutdown to a new leader both survivors agree on", time.Since(start).Round(time.Millisecond))

	var token uint64
	if err := c.onLeader(func(ctx context.Context, n *Node) (err error) {
		token, err = n.Fence(ctx)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if token <= oldToken {
		t.Errorf("new token %d not above the old %d", token, oldToken)
	}
	c.propose("after")
	for _, i := range c.running() {
		c.waitState(i, []string{"before", "after"}, 10*time.Second)
	}

	// The watcher comes to a new leader; its terms never went back.
	var last consensus.LeaderInfo
	deadline := time.After(10 * time.Second)
	for last.ID == "" || last.ID == c.opts[old].NodeID || last.Term < token {
		select {
		case info := <-changes:
			if info.Term < last.Term {
				t.Fatalf("watch went from term %d back to %d", last.Term, info.Term)
			}
			last = info
		case <-deadline:
			t.Fatalf("watcher's last value %+v, want a new leader in term %d or later", last, token)
		}
	}
	checkTerms()
}

func TestFenceFailsOnDeposedLeader(t *testing.T) {
	c := newCluster(t, 3, nil)
	old := c.waitLeader(nil, 0, 10*time.Second)
	oldToken, err := c.nodes[old].Fence(ctxTimeout(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}

	checkTerms := c.recordLeaders()
	c.faults[old].partition()
	// Before its lease runs out, the old leader still believes it leads;
	// only the check with a majority can tell it otherwise. A heartbeat
	// answered just as the partition began may still confirm one check
	// (no other leader can exist yet: the followers heard from this one),
	// so the check must fail soon after, not necessarily at once.
	for deadline := time.Now().Add(2 * time.Second); ; {
		tok, err := c.nodes[old].Fence(ctxTimeout(t, 10*time.Second))
		if err != nil {
			if !errors.Is(err, consensus.ErrNotLeader) {
				t.Errorf("fence on the partitioned leader: %v, want ErrNotLeader", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fence on the partitioned leader still succeeds with token %d after 2s", tok)
		}
	}
	rest := []int{(old + 1) % 3, (old + 2) % 3}
	nl := c.waitLeader(rest, oldToken, 10*time.Second)
	newToken, err := c.nodes[nl].Fence(ctxTimeout(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}

	// The old leader, cut off, may still believe it leads; Fence must not
	// confirm it.
	if tok, err := c.nodes[old].Fence(ctxTimeout(t, 10*time.Second)); err == nil {
		t.Fatalf("fence on the deposed leader succeeded with token %d (new leader's is %d)", tok, newToken)
	}
	if _, err := c.nodes[old].Propose(ctxTimeout(t, 10*time.Second), []byte("stale")); err == nil {
		t.Fatal("the deposed leader committed a proposal")
	}

	// Healed, it follows the new leader and its fence keeps failing.
	c.faults[old].heal()
	c.waitLeader(nil, oldToken, 10*time.Second)
	if _, err := c.nodes[old].Fence(ctxTimeout(t, 5*time.Second)); !errors.Is(err, consensus.ErrNotLeader) {
		t.Errorf("fence on the healed old leader: %v, want ErrNotLeader", err)
	}
	c.propose("after-heal")
	for i := range c.nodes {
		c.waitState(i, []string{"after-heal"}, 10*time.Second)
	}
	checkTerms()
}

func TestRestartedNodeCatchesUp(t *testing.T) {
	tests := []struct {
		name  string
		tweak func(*Options)
		// snapshot forces one on the leader while the follower is down,
		// compacting the log past what the follower has.
		snapshot bool
	}{
		{name: "from the log"},
		{name: "from a snapshot", snapshot: true, tweak: func(o *Options) {
			o.SnapshotThreshold = 5
			o.TrailingLogs = 2
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, 3, tc.tweak)
			l := c.waitLeader(nil, 0, 10*time.Second)
			first := consensustest.Numbered("a", 10)
			c.propose(first...)
			f := (l + 1) % 3
			c.waitState(f, first, 10*time.Second)
			c.stop(f)

			second := consensustest.Numbered("b", 20)
			c.propose(second...)
			if tc.snapshot {
				// On the leader, so that the log it would send from is gone.
				if err := c.onLeader(func(ctx context.Context, n *Node) error {
					if n.raft.State() != hraft.Leader {
						return consensus.ErrNotLeader
					}
					return n.Snapshot(ctx)
				}); err != nil {
					t.Fatal(err)
				}
			}
			c.start(f)
			want := append(slices.Clone(first), second...)
			c.waitState(f, want, 10*time.Second)
			if got := c.sms[f].Restores(); tc.snapshot != (got > 0) {
				t.Errorf("restores on the restarted node: %d", got)
			}

			// A whole-cluster restart keeps everything, from the durable
			// log and snapshots alone.
			for i := range c.nodes {
				c.stop(i)
			}
			for i := range c.nodes {
				c.start(i)
			}
			c.waitLeader(nil, 0, 10*time.Second)
			c.propose("c")
			want = append(want, "c")
			for i := range c.nodes {
				c.waitState(i, want, 10*time.Second)
			}
		})
	}
}

func TestJoinAndRemove(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.waitLeader(nil, 0, 10*time.Second)
	c.propose(consensustest.Numbered("a", 5)...)

	addr := testport.Addrs(t, 1)[0]
	sm := &consensustest.Recorder{}
	o := testOptions()
	o.NodeID, o.BindAddr, o.DataDir, o.StateMachine, o.Join = "n4", addr, t.TempDir(), sm, true
	joiner, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	defer joiner.Close()
	if got := joiner.Leader(); got.ID != "" {
		t.Fatalf("a node waiting to join sees leader %+v", got)
	}

	if err := c.onLeader(func(ctx context.Context, n *Node) error {
		return n.Join(ctx, consensus.Peer{ID: "n4", Address: addr})
	}); err != nil {
		t.Fatal(err)
	}
	c.propose("b")
	deadline := time.Now().Add(10 * time.Second)
	for len(sm.Commands()) != 6 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got, want := sm.Commands(), append(consensustest.Numbered("a", 5), "b"); !slices.Equal(got, want) {
		t.Fatalf("joined node holds %v, want %v", got, want)
	}
	st, err := joiner.Status(ctxTimeout(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Members) != 4 || st.Leader == "" || st.Leader == "n4" {
		t.Fatalf("status on the joined node: %+v", st)
	}
	for _, m := range st.Members {
		if m.Local != (m.ID == "n4") || (m.Local && (m.State != consensus.StateFollower || m.AppliedIndex == 0 || m.LastContact.IsZero())) {
			t.Errorf("member %+v", m)
		}
	}

	if err := c.onLeader(func(ctx context.Context, n *Node) error {
		if err := n.Remove(ctx, "n4"); err != nil {
			return err
		}
		st, err = n.Status(ctx)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, m := range st.Members {
		if m.ID == "n4" {
			t.Errorf("n4 still a member after removal: %+v", st)
		}
	}
}

func TestClosedNodeSaysClosed(t *testing.T) {
	c := newCluster(t, 1, nil)
	n := c.nodes[c.waitLeader(nil, 0, 10*time.Second)]
	changes, _ := n.WatchLeader()
	applied, _ := n.Subscribe(1)
	c.stop(0)
	if _, err := n.Propose(ctxTimeout(t, time.Second), []byte("x")); !errors.Is(err, consensus.ErrClosed) {
		t.Errorf("propose after close: %v", err)
	}
	if _, err := n.Fence(ctxTimeout(t, time.Second)); !errors.Is(err, consensus.ErrClosed) {
		t.Errorf("fence after close: %v", err)
	}
	if !drained(changes, 5*time.Second) {
		t.Error("leader watch still open after close")
	}
	if !drained(applied, 5*time.Second) {
		t.Error("subscription still open after close")
	}
}

// drained reports whether ch is closed within d, reading what is left.
func drained[T any](ch <-chan T, d time.Duration) bool {
	timeout := time.After(d)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return true
			}
		case <-timeout:
			return false
		}
	}
}

func TestResignHandsLeadershipOver(t *testing.T) {
	c := newCluster(t, 3, nil)
	old := c.waitLeader(nil, 0, 10*time.Second)
	oldToken, err := c.nodes[old].Fence(ctxTimeout(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.nodes[old].Resign(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	nl := c.waitLeader(nil, oldToken, 10*time.Second)
	if nl == old {
		// A later election may hand it back, but only in a newer term.
		t.Logf("%s leads again after resigning, in a newer term", c.opts[old].NodeID)
	}
	if tok, err := c.nodes[old].Fence(ctxTimeout(t, 5*time.Second)); err == nil && tok <= oldToken {
		t.Errorf("fence after resigning returned the old token %d", tok)
	}
	// Resigning as a follower does nothing.
	if err := c.nodes[(nl+1)%3].Resign(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Errorf("resign on a follower: %v", err)
	}
	// Campaign on the node that leads returns its token at once.
	var tok uint64
	err = c.onLeader(func(ctx context.Context, n *Node) (err error) {
		tok, err = n.Campaign(ctx)
		return err
	})
	if err != nil || tok <= oldToken {
		t.Errorf("campaign on the leader: token %d, %v; old token %d", tok, err, oldToken)
	}
}
