package etcd

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"

	"github.com/vigil-observability/vigil/internal/consensus"
	"github.com/vigil-observability/vigil/internal/consensus/consensustest"
)

func TestThreeNodesElectOneLeader(t *testing.T) {
	c := newCluster(t, 1, 3, nil)
	l := c.waitLeader(0, 10*time.Second)
	info := c.nodes[l].Leader()
	if info.ID != c.nodes[l].ID() || info.Address != c.nodes[l].Address() {
		t.Fatalf("leader n%d reports %+v", l, info)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	token, err := c.nodes[l].Campaign(ctx)
	if err != nil || token != info.Term {
		t.Fatalf("Campaign on the leader = %d, %v; want %d", token, err, info.Term)
	}
	for _, i := range c.running() {
		if i == l {
			continue
		}
		if _, err := c.nodes[i].Fence(ctx); !errors.Is(err, consensus.ErrNotLeader) {
			t.Errorf("Fence on follower n%d: %v, want ErrNotLeader", i, err)
		}
		_, err := c.nodes[i].Propose(ctx, []byte("x"))
		var nl *consensus.NotLeaderError
		if !errors.As(err, &nl) || nl.LeaderID != info.ID || nl.LeaderAddress != info.Address {
			t.Errorf("Propose on follower n%d: %v, want a NotLeaderError naming %s at %s", i, err, info.ID, info.Address)
		}
	}

	// Every node shows the same members and leader, once each has written
	// its member key.
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := c.nodes[0].Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		leaders := 0
		for _, m := range st.Members {
			ids = append(ids, m.ID)
			if m.State == consensus.StateLeader {
				leaders++
			}
		}
		slices.Sort(ids)
		if st.Leader == info.ID && st.Term == info.Term && slices.Equal(ids, []string{"n0", "n1", "n2"}) && leaders == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestProposeAppliesInOrderOnEveryNode(t *testing.T) {
	c := newCluster(t, 1, 3, nil)
	l := c.waitLeader(0, 10*time.Second)
	subs, cancel := c.nodes[(l+1)%3].Subscribe(256)
	defer cancel()

	// Concurrent proposals: the order is etcd's, and the same everywhere.
	cmds := consensustest.Numbered("c", 60)
	var wg sync.WaitGroup
	errs := make(chan error, len(cmds))
	for _, cmd := range cmds {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := c.nodes[l].Propose(ctx, []byte(cmd)); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	want := c.sms[l].Commands()
	if len(want) != len(cmds) {
		t.Fatalf("leader applied %d commands, want %d", len(want), len(cmds))
	}
	for _, i := range c.running() {
		c.waitState(i, want, 5*time.Second)
	}

	// Subscribers see each command with a growing index and the token.
	token := c.nodes[l].Leader().Term
	var last uint64
	for range cmds {
		a := <-subs
		if a.Index <= last || a.Term != token || a.Restored {
			t.Fatalf("applied %+v after index %d, want a higher index and term %d", a, last, token)
		}
		last = a.Index
	}

	// Apply's error is the proposer's result, and the log goes on.
	ctx, cancelCtx := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelCtx()
	if _, err := c.nodes[l].Propose(ctx, []byte("fail")); !errors.Is(err, consensustest.ErrRefused) {
		t.Fatalf("Propose(fail) = %v, want the state machine's error", err)
	}
	if res, err := c.nodes[l].Propose(ctx, []byte("after")); err != nil || string(res) != "61" {
		t.Fatalf("Propose(after) = %q, %v", res, err)
	}
}

func TestNewLeaderHasHigherTokenAndOldOneIsFenced(t *testing.T) {
	for _, tc := range []struct {
		name   string
		depose func(t *testing.T, c *testCluster, l int)
	}{
		{"resign", func(t *testing.T, c *testCluster, l int) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := c.nodes[l].Resign(ctx); err != nil {
				t.Fatal(err)
			}
		}},
		// The lease revoked behind the node's back, as when etcd expires
		// it for a leader cut off from it: the node has not noticed yet.
		{"lease revoked", func(t *testing.T, c *testCluster, l int) {
			lead := c.nodes[l].lead.Load()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := c.nodes[l].client.Revoke(ctx, lead.session.Lease()); err != nil {
				t.Fatal(err)
			}
		}},
		{"closed", func(t *testing.T, c *testCluster, l int) {
			c.stop(l)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, 1, 3, nil)
			l := c.waitLeader(0, 10*time.Second)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			old := c.nodes[l]
			oldToken, err := old.Fence(ctx)
			if err != nil {
				t.Fatal(err)
			}
			oldLead := old.lead.Load()
			c.propose("before")

			tc.depose(t, c, l)
			if c.nodes[l] != nil {
				// What the old leader does with its old leadership fails,
				// whether or not it has noticed yet.
				if _, err := old.barrierToken(ctx, oldLead); !errors.Is(err, consensus.ErrNotLeader) {
					t.Fatalf("fence with the old leadership: %v, want ErrNotLeader", err)
				}
			}
			nl := c.waitLeader(oldToken, 10*time.Second)
			if nl == l && tc.name == "resign" {
				t.Fatalf("n%d won back its own resignation", l)
			}
			newToken, err := c.nodes[nl].Fence(ctx)
			if err != nil || newToken <= oldToken {
				t.Fatalf("new leader n%d fence = %d, %v; want above %d", nl, newToken, err, oldToken)
			}
			if nl != l && c.nodes[l] != nil {
				if _, err := old.Fence(ctx); !errors.Is(err, consensus.ErrNotLeader) {
					t.Fatalf("old leader Fence: %v, want ErrNotLeader", err)
				}
				if _, err := old.Propose(ctx, []byte("stale")); !errors.Is(err, consensus.ErrNotLeader) {
					t.Fatalf("old leader Propose: %v, want ErrNotLeader", err)
				}
			}
			c.propose("after")
			want := []string{"before", "after"}
			for _, i := range c.running() {
				c.waitState(i, want, 5*time.Second)
			}
		})
	}
}

// barrierToken is Fence with a given leadership, as a node that has not
// yet learnt it was deposed would make it.
func (n *Node) barrierToken(ctx context.Context, l *leadership) (uint64, error) {
	if err := n.barrier(ctx, l); err != nil {
		return 0, err
	}
	return uint64(l.token), nil
}

func TestLateNodeRestoresFromSnapshot(t *testing.T) {
	c := newCluster(t, 1, 2, func(o *Options) { o.SnapshotThreshold = 25 })
	c.waitLeader(0, 10*time.Second)
	cmds := consensustest.Numbered("s", 60)
	c.propose(cmds...)
	for _, i := range c.running() {
		c.waitState(i, cmds, 5*time.Second)
	}
	// The leader wrote snapshots as it went, and deleted the log keys they
	// cover: fewer than the commands remain.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := c.nodes[0].client.Get(ctx, c.nodes[0].keys.log, clientPrefixCount()...)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Count < int64(len(cmds)-25) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d log keys remain of %d commands; snapshots should have compacted them", resp.Count, len(cmds))
		}
		time.Sleep(50 * time.Millisecond)
	}

	late := c.add()
	c.waitState(late, cmds, 5*time.Second)
	if c.sms[late].Restores() != 1 {
		t.Fatalf("late node restored %d times, want 1", c.sms[late].Restores())
	}
	more := consensustest.Numbered("t", 5)
	c.propose(more...)
	c.waitState(late, append(slices.Clone(cmds), more...), 5*time.Second)
}

func TestSurvivesLosingOneOfThreeEtcdMembers(t *testing.T) {
	c := newCluster(t, 3, 3, nil)
	l := c.waitLeader(0, 10*time.Second)
	c.propose("a", "b")
	// Kill etcd's own leader: etcd elects another while vigil's clients
	// move to the endpoints that answer.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	etcdLeader := -1
	for i, ep := range c.etcd.Endpoints() {
		st, err := c.nodes[l].client.Status(ctx, ep)
		if err != nil {
			t.Fatal(err)
		}
		if st.Leader == st.Header.MemberId {
			etcdLeader = i
		}
	}
	if etcdLeader < 0 {
		t.Fatal("no etcd member says it leads")
	}
	c.etcd.Kill(etcdLeader)
	c.propose("c", "d")
	want := []string{"a", "b", "c", "d"}
	for _, i := range c.running() {
		c.waitState(i, want, 10*time.Second)
	}
	if _, err := c.nodes[c.waitLeader(0, 10*time.Second)].Fence(ctx); err != nil {
		t.Fatalf("fence after losing an etcd member: %v", err)
	}
}

func TestClosedNodeSaysClosed(t *testing.T) {
	c := newCluster(t, 1, 1, nil)
	c.waitLeader(0, 10*time.Second)
	n := c.nodes[0]
	changes, _ := n.WatchLeader()
	applied, _ := n.Subscribe(1)
	c.stop(0)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := n.Propose(ctx, []byte("x")); !errors.Is(err, consensus.ErrClosed) {
		t.Errorf("Propose after Close: %v", err)
	}
	if _, err := n.Fence(ctx); !errors.Is(err, consensus.ErrClosed) {
		t.Errorf("Fence after Close: %v", err)
	}
	for range changes {
	}
	for range applied {
	}
	if err := n.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// A leader cut off from etcd cannot renew its lease; it must stop counting
// itself the leader within the session TTL, as etcd gives the leadership
// away by then.
func TestLeaderCutOffFromEtcdStepsDown(t *testing.T) {
	c := newCluster(t, 1, 1, nil)
	l := c.waitLeader(0, 10*time.Second)
	n := c.nodes[l]
	start := time.Now()
	c.etcd.Kill(0)
	ttl := 2 * time.Second // testOptions' SessionTTL
	deadline := start.Add(ttl + 2*time.Second)
	for n.current() != nil || n.Leader().Self {
		if time.Now().After(deadline) {
			t.Fatalf("still leading %s after etcd went away, with a %s session", time.Since(start), ttl)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("stepped down %s after etcd went away", time.Since(start).Round(10*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := n.Fence(ctx); err == nil {
		t.Fatal("Fence succeeded without etcd")
	}
}

func TestSlowSubscriberIsDropped(t *testing.T) {
	c := newCluster(t, 1, 1, nil)
	c.waitLeader(0, 10*time.Second)
	slow, cancelSlow := c.nodes[0].Subscribe(1)
	defer cancelSlow()
	fast, cancelFast := c.nodes[0].Subscribe(16)
	defer cancelFast()
	c.propose("a", "b", "c")
	for _, want := range []string{"a", "b", "c"} {
		if a := <-fast; string(a.Cmd) != want {
			t.Fatalf("fast subscriber got %q, want %q", a.Cmd, want)
		}
	}
	// The slow one took nothing: it got the first change and was then
	// dropped, not waited for.
	got := 0
	for range slow {
		got++
	}
	if got != 1 {
		t.Fatalf("slow subscriber got %d changes before its channel closed, want 1", got)
	}
}

// A node cut off from etcd while the others go on (snapshots taken, log
// keys deleted, etcd's history compacted) catches up when it is back: its
// watch cannot resume, so it restores the snapshot and reads the rest.
func TestNodeBehindCompactionCatchesUp(t *testing.T) {
	var eps []string
	c := newCluster(t, 3, 0, func(o *Options) {
		o.SnapshotThreshold = 10
		if o.NodeID == "n1" {
			// n1 talks to the member the test will kill; the others not.
			o.Endpoints = eps[:1]
		} else {
			o.Endpoints = eps[1:]
		}
	})
	eps = c.etcd.Endpoints()
	c.add()
	c.add()
	c.waitLeader(0, 10*time.Second)
	c.propose("a")
	c.waitState(1, []string{"a"}, 5*time.Second)

	c.etcd.Kill(0)
	// Leadership may have been n1's; whoever leads on the live members
	// takes the proposals.
	cmds := append([]string{"a"}, consensustest.Numbered("x", 30)...)
	c.propose(cmds[1:]...)
	c.waitState(0, cmds, 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.nodes[0].client.Get(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.nodes[0].client.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}

	restores := c.sms[1].Restores()
	c.etcd.Restart(0)
	c.waitState(1, cmds, 15*time.Second)
	if c.sms[1].Restores() <= restores {
		t.Fatalf("n1 caught up without restoring the snapshot")
	}
	c.propose("after")
	c.waitState(1, append(cmds, "after"), 5*time.Second)
}
