package alerting

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/vigil-observability/vigil/internal/consensus"
	"github.com/vigil-observability/vigil/internal/consensus/raft"
	"github.com/vigil-observability/vigil/internal/testport"
)

// raftCluster is three vigil alerting nodes on embedded Raft over loopback
// TCP, each with its Alertmanager API on an httptest server.
type raftCluster struct {
	t     *testing.T
	opts  []raft.Options
	rafts []*raft.Node
	nodes []*replNode
	fwd   *HTTPForwarder
}

func newRaftCluster(t *testing.T) *raftCluster {
	t.Helper()
	// Raft binds these only when each node opens, after the httptest
	// servers have listened on port 0: testport's are never handed out
	// there.
	peers := make([]consensus.Peer, 3)
	for i, addr := range testport.Addrs(t, len(peers)) {
		peers[i] = consensus.Peer{ID: "n" + strconv.Itoa(i+1), Address: addr}
	}
	c := &raftCluster{t: t}
	dir := t.TempDir()
	for _, p := range peers {
		c.opts = append(c.opts, raft.Options{
			NodeID: p.ID, BindAddr: p.Address, Peers: peers,
			DataDir: filepath.Join(dir, p.ID),
			// Short, as the raft package's own tests use.
			HeartbeatTimeout:   400 * time.Millisecond,
			ElectionTimeout:    400 * time.Millisecond,
			LeaderLeaseTimeout: 250 * time.Millisecond,
			CommitTimeout:      10 * time.Millisecond,
			DialTimeout:        time.Second,
		})
	}
	c.start()
	t.Cleanup(c.stop)
	return c
}

// start opens every node on its data directory with fresh state, as
// restarted processes would.
func (c *raftCluster) start() {
	c.t.Helper()
	c.fwd = &HTTPForwarder{}
	apis := map[string]string{}
	c.rafts = make([]*raft.Node, len(c.opts))
	c.nodes = make([]*replNode, len(c.opts))
	for i, o := range c.opts {
		state := newReplState(c.t)
		o.StateMachine = state
		n, err := raft.Open(o)
		if err != nil {
			c.t.Fatalf("open %s: %v", o.NodeID, err)
		}
		c.rafts[i] = n
		c.nodes[i] = startReplNode(c.t, state, n, c.fwd)
		apis[o.NodeID] = c.nodes[i].api.URL
	}
	// Set before any request: the handlers read it.
	c.fwd.APIURLs = apis
}

func (c *raftCluster) stop() {
	for i, n := range c.nodes {
		if n == nil {
			continue
		}
		n.api.Close()
		n.am.Stop()
		if err := c.rafts[i].Close(); err != nil {
			c.t.Errorf("close %s: %v", c.opts[i].NodeID, err)
		}
		c.nodes[i] = nil
	}
}

// waitLeader returns the index of the node all three agree leads.
func (c *raftCluster) waitLeader() int {
	c.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		first := c.rafts[0].Leader().ID
		agreed := first != ""
		for _, n := range c.rafts[1:] {
			agreed = agreed && n.Leader().ID == first
		}
		if agreed {
			for i, o := range c.opts {
				if o.NodeID == first {
					return i
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatal("no leader agreed on within 15s")
	return -1
}

// post retries while the cluster has no leader to take the write.
func (c *raftCluster) post(i int, body string) string {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, id := c.nodes[i].post(c.t, body)
		if code == http.StatusOK {
			return id
		}
		if code != http.StatusServiceUnavailable || time.Now().After(deadline) {
			c.t.Fatalf("POST a silence on n%d: status %d", i+1, code)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// alertState is the state n's API reports for the alert named name.
func (n *replNode) alertState(t *testing.T, name string) string {
	t.Helper()
	resp, err := http.Get(n.api.URL + "/api/v2/alerts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var alerts []struct {
		Labels map[string]string `json:"labels"`
		Status struct {
			State string `json:"state"`
		} `json:"status"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&alerts); err != nil {
		t.Fatal(err)
	}
	for _, a := range alerts {
		if a.Labels["alertname"] == name {
			return a.Status.State
		}
	}
	return "absent"
}

func TestRaftSilenceSuppressesOnEveryNodeAndSurvivesRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("three Raft nodes on loopback TCP")
	}
	c := newRaftCluster(t)
	leader := c.waitLeader()
	f1, f2 := (leader+1)%3, (leader+2)%3
	cpuHigh := model.LabelSet{"alertname": "CPUHigh", "instance": "db1"}

	// Created through a follower: forwarded to the leader and committed
	// before the follower answers.
	c.post(f1, silenceBody("alertname", "DiskFull"))
	if !c.nodes[f1].mutes(diskFull) {
		t.Errorf("n%d does not mute the silence its API just created", f1+1)
	}
	for i, n := range c.nodes {
		waitFor(t, "the silence muting on n"+strconv.Itoa(i+1), func() bool { return n.mutes(diskFull) })
	}
	// The other follower's Alertmanager suppresses the alert: it is
	// reported silenced through its API.
	c.nodes[f2].am.Send(firing(map[string]string{"alertname": "DiskFull", "instance": "db1"}, nil))
	if n := c.nodes[f2]; n.mutes(cpuHigh) || !n.mutes(diskFull) {
		t.Errorf("n%d: DiskFull muted %v (want true), CPUHigh muted %v (want false)", f2+1, n.mutes(diskFull), n.mutes(cpuHigh))
	}
	if st := c.nodes[f2].alertState(t, "DiskFull"); st != "suppressed" {
		t.Errorf("n%d reports DiskFull %q, want suppressed", f2+1, st)
	}

	// A snapshot on every node, then one more write that only the log
	// holds: the restart goes through both Restore and replay.
	for i, n := range c.rafts {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := n.Snapshot(ctx); err != nil {
			t.Fatalf("snapshot n%d: %v", i+1, err)
		}
		cancel()
	}
	c.post(f2, silenceBody("alertname", "CPUHigh"))

	c.stop()
	c.start()
	c.waitLeader()
	for i, n := range c.nodes {
		waitFor(t, "both silences muting on n"+strconv.Itoa(i+1)+" after the restart", func() bool {
			return n.mutes(diskFull) && n.mutes(cpuHigh)
		})
	}
	other := model.LabelSet{"alertname": "MemoryHigh"}
	for i, n := range c.nodes {
		if n.mutes(other) {
			t.Errorf("n%d mutes an alert no silence matches", i+1)
		}
	}
}
