package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vigil-observability/vigil/bench/internal/procfs"
)

var client = &http.Client{Timeout: 5 * time.Second}

// node is one vigil process the harness runs, restartable on the same data
// directory and ports.
type node struct {
	id      string
	bin     string
	args    []string
	logPath string
	httpURL string
	p       *proc
}

func (n *node) start() error {
	p, err := start(n.logPath, n.bin, n.args...)
	if err != nil {
		return fmt.Errorf("start %s: %w", n.id, err)
	}
	n.p = p
	return nil
}

func (n *node) stop(timeout time.Duration) {
	if n.p != nil {
		n.p.stop(timeout)
	}
}

// ready reports whether /-/ready answers 200.
func (n *node) ready() bool {
	resp, err := client.Get(n.httpURL + "/-/ready")
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (n *node) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !n.ready() {
		if n.p.exited() {
			return fmt.Errorf("%s exited: %v (log: %s)", n.id, n.p.err, n.logPath)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %v (log: %s)", n.id, timeout, n.logPath)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// clusterStatus is GET /api/v1/cluster's data.
type clusterStatus struct {
	Leader  string `json:"leader"`
	Term    uint64 `json:"term"`
	Members []struct {
		ID           string `json:"id"`
		State        string `json:"state"`
		CommitIndex  uint64 `json:"commit_index"`
		AppliedIndex uint64 `json:"applied_index"`
	} `json:"members"`
}

// self is the node's own view of its indexes.
func (s clusterStatus) self(id string) (commit, applied uint64) {
	for _, m := range s.Members {
		if m.ID == id {
			return m.CommitIndex, m.AppliedIndex
		}
	}
	return 0, 0
}

func (n *node) status() (clusterStatus, error) {
	resp, err := client.Get(n.httpURL + "/api/v1/cluster")
	if err != nil {
		return clusterStatus{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return clusterStatus{}, fmt.Errorf("%s: /api/v1/cluster: %s", n.id, resp.Status)
	}
	var env struct {
		Data clusterStatus `json:"data"`
	}
	err = json.NewDecoder(resp.Body).Decode(&env)
	return env.Data, err
}

// cluster is three vigil nodes on embedded Raft on loopback.
type cluster struct {
	nodes []*node
}

// vigilArgs are the flags every node gets: its data directory and ports.
func vigilArgs(cfg, dataDir string, addrs []string) []string {
	return []string{"server", "--config", cfg, "--data-dir", dataDir,
		"--http-addr", addrs[0], "--otlp-http-addr", addrs[1], "--otlp-grpc-addr", addrs[2],
		"--log-level", "warn"}
}

// baseConfig is what every node's vigil.yaml holds besides cluster:.
const baseConfig = "global:\n  evaluation_interval: 15s\n"

func newCluster(bin, work string, size int) (*cluster, error) {
	// Per node: HTTP, OTLP/HTTP, OTLP/gRPC, Raft.
	addrs, err := procfs.FreeAddrs(4 * size)
	if err != nil {
		return nil, err
	}
	var peers strings.Builder
	for i := range size {
		a := addrs[4*i : 4*i+4]
		fmt.Fprintf(&peers, "    - {id: n%d, address: %q, api_url: %q}\n", i+1, a[3], "http://"+a[0])
	}
	c := &cluster{}
	for i := range size {
		id := fmt.Sprintf("n%d", i+1)
		a := addrs[4*i : 4*i+4]
		cfg := filepath.Join(work, id+".yaml")
		body := fmt.Sprintf("%scluster:\n  backend: raft\n  node_id: %s\n  bind_addr: %q\n  peers:\n%s", baseConfig, id, a[3], peers.String())
		if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
			return nil, err
		}
		c.nodes = append(c.nodes, &node{
			id: id, bin: bin, args: vigilArgs(cfg, filepath.Join(work, id), a[:3]),
			logPath: filepath.Join(work, id+".log"), httpURL: "http://" + a[0],
		})
	}
	return c, nil
}

// newSingle starts a single-node vigil with the cluster's config minus
// cluster:.
func newSingle(bin, work string) (*node, error) {
	addrs, err := procfs.FreeAddrs(3)
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(work, "single.yaml")
	if err := os.WriteFile(cfg, []byte(baseConfig), 0o644); err != nil {
		return nil, err
	}
	n := &node{id: "single", bin: bin, args: vigilArgs(cfg, filepath.Join(work, "single"), addrs),
		logPath: filepath.Join(work, "single.log"), httpURL: "http://" + addrs[0]}
	return n, n.start()
}

func (c *cluster) startAll() error {
	for _, n := range c.nodes {
		if err := n.start(); err != nil {
			return err
		}
	}
	for _, n := range c.nodes {
		if err := n.waitReady(2 * time.Minute); err != nil {
			return err
		}
	}
	return nil
}

func (c *cluster) stop() {
	for _, n := range c.nodes {
		n.stop(30 * time.Second)
	}
}

func (c *cluster) byID(id string) *node {
	for _, n := range c.nodes {
		if n.id == id {
			return n
		}
	}
	return nil
}

func (c *cluster) followers(leader string) []*node {
	var out []*node
	for _, n := range c.nodes {
		if n.id != leader {
			out = append(out, n)
		}
	}
	return out
}

// agree reports whether every node in ns names the same leader, not
// excluded, with a term above minTerm, and returns that view.
func agree(ns []*node, excluded string, minTerm uint64) (clusterStatus, bool) {
	var first clusterStatus
	for i, n := range ns {
		st, err := n.status()
		if err != nil || st.Leader == "" || st.Leader == excluded || st.Term <= minTerm {
			return st, false
		}
		if i == 0 {
			first = st
		} else if st.Leader != first.Leader || st.Term != first.Term {
			return st, false
		}
	}
	return first, true
}

// settle waits until every node (or ns) names the same leader and term.
func (c *cluster) settle(timeout time.Duration, ns []*node) (clusterStatus, error) {
	if ns == nil {
		ns = c.nodes
	}
	deadline := time.Now().Add(timeout)
	for {
		if st, ok := agree(ns, "", 0); ok {
			return st, nil
		}
		if time.Now().After(deadline) {
			return clusterStatus{}, errors.New("the nodes did not agree on a leader in time")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// failoverRound is one kill -9 of the leader.
type failoverRound struct {
	killed, newLeader string
	oldTerm, newTerm  uint64
	// elected: from the kill until every survivor's /api/v1/cluster names
	// the same new leader with a higher term. ready: until, in addition,
	// every survivor's /-/ready answers 200. rejoin: from the restart of
	// the killed node until it is ready, names the leader and has applied
	// everything the leader had committed when it restarted.
	elected, ready, rejoin time.Duration
	// caughtUpTo is the leader's commit index the restarted node had to apply.
	caughtUpTo uint64
}

// pollEvery is how often the failover phase asks the survivors; it bounds
// the resolution of the times measured.
const pollEvery = 10 * time.Millisecond

func (c *cluster) failover(logw io.Writer) (failoverRound, error) {
	st, err := c.settle(time.Minute, nil)
	if err != nil {
		return failoverRound{}, err
	}
	f := failoverRound{killed: st.Leader, oldTerm: st.Term}
	victim := c.byID(st.Leader)
	survivors := c.followers(st.Leader)
	t0 := time.Now()
	victim.p.kill9()
	deadline := t0.Add(time.Minute)
	for f.ready == 0 {
		if time.Now().After(deadline) {
			return f, fmt.Errorf("no new leader ready within a minute of killing %s", f.killed)
		}
		if now, ok := agree(survivors, f.killed, f.oldTerm); ok {
			if f.elected == 0 {
				f.elected = time.Since(t0)
				f.newLeader, f.newTerm = now.Leader, now.Term
			}
			all := true
			for _, n := range survivors {
				all = all && n.ready()
			}
			if all {
				f.ready = time.Since(t0)
			}
		}
		time.Sleep(pollEvery)
	}

	// Bring the killed node back on its data directory and wait until it
	// has caught up: ready, naming the leader, and applied up to the
	// leader's commit index as of its restart.
	leader := c.byID(f.newLeader)
	lst, err := leader.status()
	if err != nil {
		return f, err
	}
	target, _ := lst.self(leader.id)
	f.caughtUpTo = target
	t1 := time.Now()
	if err := victim.start(); err != nil {
		return f, err
	}
	if err := victim.waitReady(2 * time.Minute); err != nil {
		return f, err
	}
	for {
		vst, err := victim.status()
		if err == nil && vst.Leader == f.newLeader {
			if _, applied := vst.self(victim.id); applied >= target {
				break
			}
		}
		if time.Since(t1) > 2*time.Minute {
			return f, fmt.Errorf("%s did not catch up within 2 minutes (leader commit %d)", victim.id, target)
		}
		time.Sleep(pollEvery)
	}
	f.rejoin = time.Since(t1)
	return f, nil
}
