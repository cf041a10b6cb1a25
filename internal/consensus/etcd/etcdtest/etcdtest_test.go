package etcdtest

import (
	"testing"
	"time"
)

// TestLeaderKillRestart pins what the fault tests lean on: Leader names a
// member, a killed leader is replaced by another one, and the killed
// member restarts on its data directory.
func TestLeaderKillRestart(t *testing.T) {
	c := Start(t, 3)
	leader := waitLeader(t, c, -1)
	c.Kill(leader)
	next := waitLeader(t, c, leader)
	c.Restart(leader)
	if got := waitLeader(t, c, -1); got < 0 {
		t.Fatalf("no leader after %d restarted", leader)
	}
	t.Logf("etcd leader %d killed, %d took over, %d restarted", leader, next, leader)
}

// waitLeader waits for a leader other than not.
func waitLeader(t *testing.T, c *Cluster, not int) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if l := c.Leader(); l >= 0 && l != not {
			return l
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no etcd leader other than %d within 20s", not)
	return -1
}
