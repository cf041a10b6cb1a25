package raft

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/vigil-observability/vigil/internal/consensus"
	"github.com/vigil-observability/vigil/internal/consensus/consensustest"
	"github.com/vigil-observability/vigil/internal/testport"
)

// testCluster runs nodes n1..nN on loopback TCP, with timeouts short enough
// for a test and long enough for a loaded machine running the race detector.
type testCluster struct {
	t     *testing.T
	opts  []Options
	sms   []*consensustest.Recorder
	nodes []*Node
	// faults[i] sits between node i and the network.
	faults []*faultyStream
}

func testOptions() Options {
	return Options{
		HeartbeatTimeout:   400 * time.Millisecond,
		ElectionTimeout:    400 * time.Millisecond,
		LeaderLeaseTimeout: 250 * time.Millisecond,
		CommitTimeout:      10 * time.Millisecond,
		DialTimeout:        time.Second,
	}
}

func newCluster(t *testing.T, size int, tweak func(*Options)) *testCluster {
	t.Helper()
	addrs := testport.Addrs(t, size)
	peers := make([]consensus.Peer, size)
	for i := range peers {
		peers[i] = consensus.Peer{ID: "n" + strconv.Itoa(i+1), Address: addrs[i]}
	}
	c := &testCluster{t: t, nodes: make([]*Node, size), sms: make([]*consensustest.Recorder, size), faults: make([]*faultyStream, size)}
	dir := t.TempDir()
	for i := range peers {
		o := testOptions()
		o.NodeID = peers[i].ID
		o.BindAddr = peers[i].Address
		o.Peers = peers
		o.DataDir = filepath.Join(dir, peers[i].ID)
		if tweak != nil {
			tweak(&o)
		}
		c.opts = append(c.opts, o)
	}
	for i := range peers {
		c.start(i)
	}
	t.Cleanup(func() {
		for i := range c.nodes {
			c.stop(i)
		}
	})
	return c
}

// start opens node i on its data directory with a fresh state machine, as
// a restarted process would.
func (c *testCluster) start(i int) {
	c.t.Helper()
	o := c.opts[i]
	c.sms[i] = &consensustest.Recorder{}
	o.StateMachine = c.sms[i]
	c.faults[i] = &faultyStream{}
	f := c.faults[i]
	o.wrapStream = func(s hraft.StreamLayer) hraft.StreamLayer { f.StreamLayer = s; return f }
	n, err := Open(o)
	if err != nil {
		c.t.Fatalf("open %s: %v", o.NodeID, err)
	}
	c.nodes[i] = n
}

func (c *testCluster) stop(i int) {
	c.t.Helper()
	if c.nodes[i] == nil {
		return
	}
	if err := c.nodes[i].Close(); err != nil {
		c.t.Errorf("close %s: %v", c.opts[i].NodeID, err)
	}
	c.nodes[i] = nil
}

func (c *testCluster) running() []int { return consensustest.Running(c.nodes) }

// waitLeader polls until the nodes in idx (all running ones when nil)
// agree on one leader among them that leads in a term above minTerm, and
// returns its index.
func (c *testCluster) waitLeader(idx []int, minTerm uint64, within time.Duration) int {
	c.t.Helper()
	if idx == nil {
		idx = c.running()
	}
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if l, ok := c.agreedLeader(idx, minTerm); ok {
			return l
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, i := range idx {
		c.t.Logf("%s sees %+v", c.opts[i].NodeID, c.nodes[i].Leader())
	}
	c.t.Fatalf("no leader agreed on within %s", within)
	return -1
}

func (c *testCluster) agreedLeader(idx []int, minTerm uint64) (int, bool) {
	return consensustest.AgreedLeader(c.nodes, idx, minTerm)
}

// waitState waits until node i has applied exactly want.
func (c *testCluster) waitState(i int, want []string, within time.Duration) {
	c.t.Helper()
	consensustest.WaitCommands(c.t, c.opts[i].NodeID, c.sms[i], want, within)
}

// propose proposes cmds one after the other on whichever node leads,
// retrying through leader changes (a loaded machine can depose a leader
// at any time).
func (c *testCluster) propose(cmds ...string) {
	c.t.Helper()
	for _, cmd := range cmds {
		if _, err := c.proposeRetry(cmd); err != nil {
			c.t.Fatal(err)
		}
	}
}

func (c *testCluster) proposeRetry(cmd string) ([]byte, error) {
	var res []byte
	err := c.onLeader(func(ctx context.Context, n *Node) error {
		var err error
		res, err = n.Propose(ctx, []byte(cmd))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("propose %q: %w", cmd, err)
	}
	return res, nil
}

// onLeader runs call on the node that leads, again on the next leader
// while it fails for want of leadership, for up to 10 seconds.
func (c *testCluster) onLeader(call func(context.Context, *Node) error) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		i, ok := c.agreedLeader(c.running(), 0)
		if !ok {
			if time.Now().After(deadline) {
				return errors.New("no leader")
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		err := call(ctx, c.nodes[i])
		cancel()
		if err == nil || time.Now().After(deadline) ||
			!(errors.Is(err, consensus.ErrNotLeader) || errors.Is(err, consensus.ErrLeadershipLost)) {
			return err
		}
	}
}

// faultyStream can cut a node off: every connection it holds is closed and
// new ones are refused both ways until it heals.
type faultyStream struct {
	hraft.StreamLayer

	mu    sync.Mutex
	cut   bool
	conns []net.Conn
}

var errPartitioned = errors.New("partitioned by the test")

func (f *faultyStream) track(c net.Conn) (net.Conn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cut {
		_ = c.Close()
		return nil, errPartitioned
	}
	f.conns = append(f.conns, c)
	return c, nil
}

func (f *faultyStream) Accept() (net.Conn, error) {
	for {
		c, err := f.StreamLayer.Accept()
		if err != nil {
			return nil, err
		}
		// A refused connection is dropped here and the next one awaited: an
		// error from Accept would make raft back off or stop listening.
		if c, err := f.track(c); err == nil {
			return c, nil
		}
	}
}

func (f *faultyStream) Dial(addr hraft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	c, err := f.StreamLayer.Dial(addr, timeout)
	if err != nil {
		return nil, err
	}
	return f.track(c)
}

func (f *faultyStream) partition() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cut = true
	for _, c := range f.conns {
		_ = c.Close()
	}
	f.conns = nil
}

func (f *faultyStream) heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cut = false
}

// recordLeaders watches every running node's view of the leader until the
// returned check runs, which fails the test if two nodes ever named
// different leaders for one term: Raft's election safety, and what makes
// the term usable as a fencing token.
func (c *testCluster) recordLeaders() (check func()) {
	var mu sync.Mutex
	seen := map[uint64]string{}
	var conflicts []string
	var wg sync.WaitGroup
	var cancels []func()
	for _, i := range c.running() {
		changes, cancel := c.nodes[i].WatchLeader()
		cancels = append(cancels, cancel)
		wg.Go(func() {
			for info := range changes {
				if info.ID == "" {
					continue
				}
				mu.Lock()
				if prev, ok := seen[info.Term]; ok && prev != info.ID {
					conflicts = append(conflicts, fmt.Sprintf("term %d: %s and %s", info.Term, prev, info.ID))
				}
				seen[info.Term] = info.ID
				mu.Unlock()
			}
		})
	}
	return func() {
		c.t.Helper()
		for _, cancel := range cancels {
			cancel()
		}
		wg.Wait()
		if len(conflicts) > 0 {
			c.t.Errorf("two leaders in one term: %v", conflicts)
		}
		if len(seen) == 0 {
			c.t.Error("no leader seen while recording")
		}
	}
}
