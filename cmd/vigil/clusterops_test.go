package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-observability/vigil/internal/testport"
)

// TestClusterJoinRemove runs three vigil processes on embedded Raft with
// admin endpoints on, and a fourth started with cluster.join: `vigil
// cluster join` sent to a follower reaches the leader, after which all four
// agree on the leader and list four members; `vigil cluster remove` takes
// the fourth out again.
func TestClusterJoinRemove(t *testing.T) {
	if testing.Short() {
		t.Skip("runs four vigil processes")
	}
	dir := t.TempDir()
	ids := []string{"n1", "n2", "n3", "n4"}
	httpAddrs, raftAddrs := make([]string, 4), make([]string, 4)
	var peers strings.Builder
	for i, id := range ids {
		httpAddrs[i], raftAddrs[i] = testport.Addr(t), testport.Addr(t)
		if i < 3 {
			fmt.Fprintf(&peers, "    - {id: %s, address: %q, api_url: %q}\n", id, raftAddrs[i], "http://"+httpAddrs[i])
		}
	}
	nodes, cfgs := make([]*server, 4), make([]string, 4)
	for i, id := range ids {
		join := ""
		if id == "n4" {
			join = "  join: true\n"
		}
		cfgs[i] = filepath.Join(dir, id+".yaml")
		body := fmt.Sprintf("cluster:\n  backend: raft\n  node_id: %s\n  bind_addr: %q\n%s  peers:\n%s", id, raftAddrs[i], join, peers.String())
		if err := os.WriteFile(cfgs[i], []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// n4 starts only once the others lead, as an operator would.
	launch := func(i int) {
		nodes[i] = launchServer(t, filepath.Join(dir, ids[i]), "--config", cfgs[i], "--http-addr", httpAddrs[i], "--enable-admin")
	}
	for i := range ids[:3] {
		launch(i)
	}
	// A node that lost one of the fresh ports launchServer chose for it
	// to another socket in between is launched again, on others; a node
	// alone is not ready, so the three are waited for together.
	relaunched := 0
	waitFor(t, "the three nodes ready", 2*time.Minute, func() bool {
		ready := 0
		for i, n := range nodes[:3] {
			select {
			case err := <-n.done:
				n.done <- err // for whoever waits next (the cleanup)
				if relaunched < 3 && strings.Contains(n.logs.String(), "address already in use") {
					relaunched++
					t.Logf("%s could not bind a port (%v); launching it again", ids[i], err)
					launch(i)
					return false
				}
				t.Fatalf("%s exited during start-up: %v\n%s", ids[i], err, n.logs.String())
			default:
			}
			if resp, err := http.Get(n.httpURL + "/-/ready"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					ready++
				}
			}
		}
		return ready == 3
	})
	var leader string
	waitFor(t, "the three nodes to agree on a leader", 30*time.Second, func() bool {
		leader, _ = agreedLeader(nodes[:3], 3)
		return leader != ""
	})
	nodes[3] = launchServer(t, filepath.Join(dir, "n4"), "--config", cfgs[3], "--http-addr", httpAddrs[3], "--enable-admin")

	follower := nodes[0]
	if leader == "n1" {
		follower = nodes[1]
	}
	cli := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := run(append([]string{"cluster"}, args...), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	code, out, errOut := cli("join", "--server", follower.httpURL, "--id", "n4", "--address", raftAddrs[3])
	if code != 0 || !strings.Contains(errOut, "sending to the leader, "+leader) || !strings.Contains(out, "n4  "+raftAddrs[3]) {
		t.Fatalf("join through a follower: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	nodes[3].waitReady(t) // ready once it knows the leader
	waitFor(t, "all four nodes to agree on the leader and list four members", 30*time.Second, func() bool {
		l, _ := agreedLeader(nodes, 4)
		return l != ""
	})

	var leaderNode *server
	for i, id := range ids[:3] {
		if id == leader {
			leaderNode = nodes[i]
		}
	}
	if code, out, errOut = cli("remove", "--server", leaderNode.httpURL, "--id", "n4", "--output", "json"); code != 0 || strings.Contains(out, `"n4"`) {
		t.Fatalf("remove n4 on the leader: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	waitFor(t, "the three nodes to list three members again", 30*time.Second, func() bool {
		l, _ := agreedLeader(nodes[:3], 3)
		return l != ""
	})
	if code, _, errOut = cli("remove", "--server", leaderNode.httpURL, "--id", "n4"); code != 1 || !strings.Contains(errOut, "n4 is not a member") {
		t.Errorf("removing n4 twice: exit %d, stderr %s; want 1 and not a member", code, errOut)
	}
}

// On a single node without admin endpoints, vigil cluster status says
// vigil runs single-node, and the membership endpoints are not mounted.
func TestClusterCommandSingleNode(t *testing.T) {
	s := startServer(t, t.TempDir())
	var stdout, stderr bytes.Buffer
	if code := run([]string{"cluster", "status", "--server", s.httpURL}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "vigil runs single-node") {
		t.Errorf("status of a single node: exit %d, stderr %q; want 1 and single-node", code, &stderr)
	}
	for _, r := range []struct{ method, path string }{
		{http.MethodPost, "/api/v1/cluster/members"},
		{http.MethodDelete, "/api/v1/cluster/members/n1"},
	} {
		req, _ := http.NewRequest(r.method, s.httpURL+r.path, strings.NewReader(`{"id":"n4","address":"127.0.0.1:1"}`))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		// Mounted, they would answer 404 too, but saying single-node.
		if (resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed) || strings.Contains(string(body), "single-node") {
			t.Errorf("%s %s without admin: %d %s, want 404 or 405 from no route", r.method, r.path, resp.StatusCode, body)
		}
	}
}
