package etcd

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vigil-observability/vigil/internal/consensus"
	"github.com/vigil-observability/vigil/internal/consensus/consensustest"
	"github.com/vigil-observability/vigil/internal/consensus/etcd/etcdtest"
)

// testCluster is vigil nodes on one etcd cluster.
type testCluster struct {
	t     *testing.T
	etcd  *etcdtest.Cluster
	nodes []*Node
	sms   []*consensustest.Recorder
	tweak func(*Options)
}

func testOptions(eps []string, id string, sm consensus.StateMachine) Options {
	return Options{
		Endpoints:         eps,
		Prefix:            "/vigil-test",
		NodeID:            id,
		Address:           id + ".example:9090",
		StateMachine:      sm,
		SessionTTL:        2 * time.Second,
		DialTimeout:       2 * time.Second,
		HeartbeatInterval: 200 * time.Millisecond,
	}
}

// newCluster starts an etcd cluster of etcdSize members and size vigil
// nodes on it.
func newCluster(t *testing.T, etcdSize, size int, tweak func(*Options)) *testCluster {
	t.Helper()
	c := &testCluster{t: t, etcd: etcdtest.Start(t, etcdSize), tweak: tweak}
	for range size {
		c.add()
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			if n != nil {
				_ = n.Close()
			}
		}
	})
	return c
}

// add starts one more node, n<i>.
func (c *testCluster) add() int {
	c.t.Helper()
	i := len(c.nodes)
	sm := &consensustest.Recorder{}
	o := testOptions(c.etcd.Endpoints(), fmt.Sprintf("n%d", i), sm)
	if c.tweak != nil {
		c.tweak(&o)
	}
	n, err := Open(o)
	if err != nil {
		c.t.Fatalf("open n%d: %v", i, err)
	}
	c.nodes = append(c.nodes, n)
	c.sms = append(c.sms, sm)
	return i
}

func (c *testCluster) stop(i int) {
	c.t.Helper()
	if err := c.nodes[i].Close(); err != nil {
		c.t.Logf("close n%d: %v", i, err)
	}
	c.nodes[i] = nil
}

func (c *testCluster) running() []int { return consensustest.Running(c.nodes) }

// waitLeader waits until exactly one running node leads with a token above
// minToken and every running node names it.
func (c *testCluster) waitLeader(minToken uint64, within time.Duration) int {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if i, ok := c.agreedLeader(minToken); ok {
			return i
		}
		time.Sleep(20 * time.Millisecond)
	}
	var views []string
	for _, i := range c.running() {
		views = append(views, fmt.Sprintf("n%d: %+v", i, c.nodes[i].Leader()))
	}
	c.t.Fatalf("no agreed leader above token %d within %s: %v", minToken, within, views)
	return -1
}

func (c *testCluster) agreedLeader(minToken uint64) (int, bool) {
	return consensustest.AgreedLeader(c.nodes, c.running(), minToken)
}

// waitState waits until node i has applied exactly want.
func (c *testCluster) waitState(i int, want []string, within time.Duration) {
	c.t.Helper()
	consensustest.WaitCommands(c.t, fmt.Sprintf("n%d", i), c.sms[i], want, within)
}

// propose proposes on whichever node leads, retrying across an election.
func (c *testCluster) propose(cmds ...string) {
	c.t.Helper()
	for _, cmd := range cmds {
		if _, err := c.proposeRetry(cmd); err != nil {
			c.t.Fatalf("propose %q: %v", cmd, err)
		}
	}
}

func (c *testCluster) proposeRetry(cmd string) ([]byte, error) {
	deadline := time.Now().Add(10 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		for _, i := range c.running() {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			res, err := c.nodes[i].Propose(ctx, []byte(cmd))
			cancel()
			if err == nil || errors.Is(err, consensustest.ErrRefused) {
				return res, err
			}
			last = err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil, last
}

func clientPrefixCount() []clientv3.OpOption {
	return []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithCountOnly()}
}
