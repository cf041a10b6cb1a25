package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-observability/vigil/internal/consensus/etcd/etcdtest"
	"github.com/vigil-observability/vigil/internal/testport"
)

// newConfigCluster is three vigil processes on embedded Raft with admin
// endpoints on, each with its own copy of rules.yml and alertmanager.yml in
// a directory of its own (<dir>/<id>-conf), laid out alike, as separate
// hosts would be. No fault proxy: the Raft addresses are direct.
func newConfigCluster(t *testing.T, rulesYAML, alertmanagerYAML string) *faultCluster {
	t.Helper()
	c := &faultCluster{t: t, dir: t.TempDir(), ids: []string{"n1", "n2", "n3"}}
	n := len(c.ids)
	c.httpAddrs, c.cfgs, c.nodes = make([]string, n), make([]string, n), make([]*server, n)
	binds := make([]string, n)
	var peers strings.Builder
	for i, id := range c.ids {
		c.httpAddrs[i], binds[i] = testport.Addr(t), testport.Addr(t)
		fmt.Fprintf(&peers, "    - {id: %s, address: %q, api_url: %q}\n", id, binds[i], "http://"+c.httpAddrs[i])
	}
	for i, id := range c.ids {
		if err := os.MkdirAll(filepath.Join(c.dir, id+"-conf"), 0o755); err != nil {
			t.Fatal(err)
		}
		c.write(id+"-conf/rules.yml", rulesYAML)
		c.write(id+"-conf/alertmanager.yml", alertmanagerYAML)
		c.cfgs[i] = c.write(id+"-conf/vigil.yaml", fmt.Sprintf(`global:
  evaluation_interval: 1s
rule_files: [rules.yml]
alertmanager_config_file: alertmanager.yml
cluster:
  backend: raft
  node_id: %s
  bind_addr: %q
  advertise_addr: %q
  peers:
%s`, id, binds[i], binds[i], peers.String()))
	}
	for i := range c.ids {
		launchConfigNode(c, i)
	}
	for i := range c.ids {
		c.waitReady(i)
	}
	c.settle(c.all(), 30*time.Second)
	return c
}

func launchConfigNode(c *faultCluster, i int) {
	c.nodes[i] = launchServer(c.t, filepath.Join(c.dir, c.ids[i]), "--config", c.cfgs[i], "--http-addr", c.httpAddrs[i], "--enable-admin")
}

// writeFor replaces node i's own copy of a configuration file.
func writeFor(c *faultCluster, i int, name, body string) {
	c.t.Helper()
	c.write(c.ids[i]+"-conf/"+name, body)
}

type nodeConfig struct {
	Node      string
	Committed struct {
		Generation uint64
		Digest     string
		Origin     string
	}
	Installed struct {
		Generation uint64
		Digest     string
	}
	InstallError     string `json:"install_error"`
	LocalFilesDiffer bool   `json:"local_files_differ"`
}

func configOf(s *server) (nodeConfig, error) {
	var a struct {
		Status string
		Data   nodeConfig
	}
	resp, err := http.Get(s.httpURL + "/api/v1/cluster/config")
	if err != nil {
		return a.Data, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return a.Data, fmt.Errorf("status %d", resp.StatusCode)
	}
	return a.Data, json.NewDecoder(resp.Body).Decode(&a)
}

// sameConfig waits until every node in among runs one committed
// configuration, at least generation atLeast, and returns it.
func sameConfig(c *faultCluster, among []int, atLeast uint64) nodeConfig {
	c.t.Helper()
	var first nodeConfig
	waitFor(c.t, fmt.Sprintf("nodes %v to run one configuration of generation %d or later", among, atLeast), 20*time.Second, func() bool {
		for k, i := range among {
			nc, err := configOf(c.nodes[i])
			if err != nil || nc.Committed.Generation < atLeast || nc.Installed != struct {
				Generation uint64
				Digest     string
			}{nc.Committed.Generation, nc.Committed.Digest} {
				return false
			}
			if k == 0 {
				first = nc
			} else if nc.Committed != first.Committed {
				return false
			}
		}
		return true
	})
	return first
}

func reloadNode(s *server) (int, string) {
	resp, err := http.Post(s.httpURL+"/-/reload", "", nil)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func alertRules(names ...string) string {
	var b strings.Builder
	b.WriteString("groups:\n  - name: config\n    rules:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "      - {alert: %s, expr: vector(1)}\n", n)
	}
	return b.String()
}

// TestClusterConfigReload: a reload on one node reaches every node, or is
// refused everywhere.
//
//  1. At start the first leader commits its files; every node runs them.
//  2. A new rule file reloaded on a follower is committed through the
//     leader; every node runs the same generation, and the new rule's alert
//     is notified by the leader.
//  3. An invalid rule file reloaded on a node is refused there with 400, and
//     no node's configuration changes.
//  4. The leader killed, the new leader, whose own rule file is stale,
//     evaluates the replicated rules.
//  5. The old leader restarted on its stale file runs the cluster's
//     configuration and says its files differ.
//  6. A node restarted on an invalid rule file starts, on the cluster's.
func TestClusterConfigReload(t *testing.T) {
	sink := &termSink{}
	hook := httptest.NewServer(sink)
	defer hook.Close()
	c := newConfigCluster(t, alertRules("Before"), faultAlertmanager(hook.URL))
	leader, term := c.settle(c.all(), 30*time.Second)
	first := sameConfig(c, c.all(), 1)
	if first.Committed.Origin != c.ids[leader] || first.LocalFilesDiffer {
		t.Errorf("first configuration: %+v, want it committed by the leader %s and equal to every node's files", first, c.ids[leader])
	}

	// 2. A reload on a follower.
	via := c.except(leader)[0]
	writeFor(c, via, "rules.yml", alertRules("After"))
	if code, body := reloadNode(c.nodes[via]); code != http.StatusOK {
		t.Fatalf("reload on the follower %s: %d %s", c.ids[via], code, body)
	}
	reloaded := sameConfig(c, c.all(), first.Committed.Generation+1)
	if reloaded.Committed.Origin != c.ids[via] || reloaded.Committed.Digest == first.Committed.Digest {
		t.Errorf("after the reload on %s: %+v, want a new configuration from it", c.ids[via], reloaded)
	}
	reloadedAt := time.Now()
	waitFor(t, "After notified by the leader", 20*time.Second, func() bool {
		for _, n := range sink.of("After", reloadedAt, time.Now()) {
			if c.nodeOf(n.externalURL) == c.ids[leader] && n.term == term {
				return true
			}
		}
		return false
	})

	// 3. An invalid rule file, refused where it is reloaded, nothing
	// changes anywhere. The node keeps the invalid file: a stale one for
	// step 4, should it lead then.
	bad := c.except(leader, via)[0]
	writeFor(c, bad, "rules.yml", "groups:\n  - name: broken\n    rules:\n      - {alert: Broken, expr: 'sum('}\n")
	if code, body := reloadNode(c.nodes[bad]); code != http.StatusBadRequest || !strings.Contains(body, "rules.yml") {
		t.Errorf("reload of an invalid rule file on %s: %d %q, want 400 naming the file", c.ids[bad], code, body)
	}
	for _, i := range c.all() {
		if nc, err := configOf(c.nodes[i]); err != nil || nc.Committed != reloaded.Committed || nc.Installed.Generation != reloaded.Committed.Generation {
			t.Errorf("%s after the refused reload: %+v, %v; want still generation %d", c.ids[i], nc, err, reloaded.Committed.Generation)
		}
	}

	// 4. Every survivor's own rule file is stale now (the follower that
	// reloaded goes back to the first one, without a reload).
	writeFor(c, via, "rules.yml", alertRules("Before"))
	c.nodes[leader].kill9(t)
	killedAt := time.Now()
	newLeader, newTerm := c.settleAway(c.except(leader), leader, 20*time.Second)
	waitFor(t, "After notified by the new leader", 20*time.Second, func() bool {
		for _, n := range sink.of("After", killedAt, time.Now()) {
			if c.nodeOf(n.externalURL) == c.ids[newLeader] && n.term >= newTerm {
				return true
			}
		}
		return false
	})
	if notes := sink.of("Before", killedAt.Add(2*time.Second), time.Now()); len(notes) > 0 {
		t.Errorf("Before, from a stale local rule file, notified %d times after the failover (first by %s)", len(notes), c.nodeOf(notes[0].externalURL))
	}

	// 5. The old leader back on its own, now stale, files.
	writeFor(c, leader, "rules.yml", alertRules("Before", "Stale"))
	launchConfigNode(c, leader)
	c.waitReady(leader)
	back := sameConfig(c, c.all(), reloaded.Committed.Generation)
	if back.Committed != reloaded.Committed {
		t.Errorf("after the restart: %+v, want generation %d still", back.Committed, reloaded.Committed.Generation)
	}
	if nc, _ := configOf(c.nodes[leader]); !nc.LocalFilesDiffer {
		t.Errorf("%s restarted on a stale rule file: %+v, want local_files_differ", c.ids[leader], nc)
	}
	// The node's output reaches logs through a pipe, at times after what
	// the test asked of it.
	waitFor(t, c.ids[leader]+" warning that its stale rule file differs, naming it", 10*time.Second, func() bool {
		logs := c.nodes[leader].logs.String()
		return strings.Contains(logs, "differ from the cluster's") && strings.Contains(logs, "rules.yml changed")
	})

	// 6. The node whose own rule file is invalid (step 3) restarts too:
	// it runs the cluster's configuration rather than refusing to start.
	c.nodes[bad].kill9(t)
	launchConfigNode(c, bad)
	c.waitReady(bad)
	if again := sameConfig(c, c.all(), reloaded.Committed.Generation); again.Committed != reloaded.Committed {
		t.Errorf("after %s restarted on an invalid rule file: %+v, want generation %d still", c.ids[bad], again.Committed, reloaded.Committed.Generation)
	}
}

// TestClusterConfigReloadEtcd: on etcd, a follower finds the leader's API
// by the address the leader published, and its reload reaches both nodes.
func TestClusterConfigReloadEtcd(t *testing.T) {
	etcdCluster := etcdtest.Start(t, 1) // skips without the etcd binary
	sink := &termSink{}
	hook := httptest.NewServer(sink)
	defer hook.Close()
	c := &faultCluster{t: t, dir: t.TempDir(), ids: []string{"e1", "e2"}}
	c.httpAddrs, c.cfgs, c.nodes = make([]string, 2), make([]string, 2), make([]*server, 2)
	for i, id := range c.ids {
		if err := os.MkdirAll(filepath.Join(c.dir, id+"-conf"), 0o755); err != nil {
			t.Fatal(err)
		}
		c.httpAddrs[i] = testport.Addr(t)
		writeFor(c, i, "rules.yml", alertRules("Before"))
		writeFor(c, i, "alertmanager.yml", faultAlertmanager(hook.URL))
		c.cfgs[i] = c.write(id+"-conf/vigil.yaml", fmt.Sprintf(`global: {evaluation_interval: 1s}
rule_files: [rules.yml]
alertmanager_config_file: alertmanager.yml
cluster: {backend: etcd, endpoints: [%q], prefix: /vigil-config, node_id: %s}
`, etcdCluster.Endpoints()[0], id))
		launchConfigNode(c, i)
	}
	for i := range c.ids {
		c.waitReady(i)
	}
	leader, term := c.settle([]int{0, 1}, 30*time.Second)
	first := sameConfig(c, []int{0, 1}, 1)
	via := 1 - leader
	writeFor(c, via, "rules.yml", alertRules("After"))
	if code, body := reloadNode(c.nodes[via]); code != http.StatusOK {
		t.Fatalf("reload on the follower %s: %d %s", c.ids[via], code, body)
	}
	reloaded := sameConfig(c, []int{0, 1}, first.Committed.Generation+1)
	if reloaded.Committed.Origin != c.ids[via] {
		t.Errorf("after the reload on %s: %+v, want it the origin", c.ids[via], reloaded.Committed)
	}
	reloadedAt := time.Now()
	waitFor(t, "After notified by the leader", 20*time.Second, func() bool {
		for _, n := range sink.of("After", reloadedAt, time.Now()) {
			if c.nodeOf(n.externalURL) == c.ids[leader] && n.term == term {
				return true
			}
		}
		return false
	})
}
