package etcd

import (
	"context"
	"slices"
	"testing"
	"time"
)

// Any node, leader or not, gets a read index from etcd itself; once it has
// applied up to it, it holds every command proposed before the call.
func TestReadIndexOnEveryNode(t *testing.T) {
	c := newCluster(t, 1, 2, nil)
	c.waitLeader(0, 10*time.Second)
	for round, cmd := range []string{"a", "b", "c"} {
		c.propose(cmd)
		want := []string{"a", "b", "c"}[:round+1]
		for i, n := range c.nodes {
			ctx := ctxTimeout(t, 5*time.Second)
			index, err := n.ReadIndex(ctx)
			if err != nil {
				t.Fatalf("n%d ReadIndex: %v", i, err)
			}
			if err := n.WaitApplied(ctx, index); err != nil {
				t.Fatalf("n%d WaitApplied(%d): %v", i, index, err)
			}
			// No polling: the read index alone must make the write visible.
			if got := c.sms[i].Commands(); !slices.Equal(got, want) {
				t.Fatalf("n%d after WaitApplied(%d) holds %v, want %v", i, index, got, want)
			}
		}
	}

	// Without etcd there is no read index, rather than a stale one.
	c.etcd.Kill(0)
	ctx := ctxTimeout(t, time.Second)
	index, err := c.nodes[1].ReadIndex(ctx)
	c.etcd.Restart(0)
	if err == nil {
		t.Fatalf("ReadIndex with etcd down: %d, want an error", index)
	}
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
