package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-observability/vigil/internal/config"
	"github.com/vigil-observability/vigil/internal/consensus/etcd/etcdtest"
	"github.com/vigil-observability/vigil/internal/testport"
)

// faultCluster is three vigil processes on one consensus backend whose
// consensus traffic passes through a faultNet, so that a test can
// partition a node as well as kill and restart it on its data directory.
// On etcd the test also runs the three etcd members, each node reaching
// them through proxies of its own.
type faultCluster struct {
	t         *testing.T
	backend   string // "raft" or "etcd"
	dir       string
	ids       []string
	httpAddrs []string
	cfgs      []string
	nodes     []*server // nil while a node is down
	net       *faultNet
	etcd      *etcdtest.Cluster // etcd only
	// authHeader is sent with the harness's own reads of the nodes when
	// the nodes' config turns authentication on.
	authHeader string
}

// backends are the consensus backends the fault tests run on, each as a
// subtest of its name.
var backends = []string{config.ClusterRaft, config.ClusterEtcd}

// newFaultCluster writes the configs and starts the three nodes on
// backend, waiting until they agree on a leader. alertmanagerYAML is
// written as alertmanager.yml and rulesYAML (when not empty) as rules.yml.
// On etcd it first starts three etcd members (and skips the test without
// the etcd binary, as etcdtest does).
func newFaultCluster(t *testing.T, backend, rulesYAML, alertmanagerYAML string) *faultCluster {
	t.Helper()
	return newFaultClusterWith(t, backend, rulesYAML, alertmanagerYAML, faultClusterExtra{})
}

// faultClusterExtra is what some fault tests add to every node.
type faultClusterExtra struct {
	files      map[string]string // written beside the configs
	yaml       string            // appended to each node's config
	authHeader string            // see faultCluster.authHeader
}

// newFaultClusterWith is newFaultCluster with extra files and config.
func newFaultClusterWith(t *testing.T, backend, rulesYAML, alertmanagerYAML string, extra faultClusterExtra) *faultCluster {
	t.Helper()
	c := &faultCluster{t: t, backend: backend, dir: t.TempDir(), ids: []string{"n1", "n2", "n3"}, net: newFaultNet(t), authHeader: extra.authHeader}
	for name, content := range extra.files {
		c.write(name, content)
	}
	n := len(c.ids)
	c.httpAddrs, c.cfgs, c.nodes = make([]string, n), make([]string, n), make([]*server, n)
	// etcd and the proxies bind their ports first: a port picked for a
	// node's HTTP API is free only until something else binds it, and a
	// node cannot move to another, which its config names.
	var endpoints [][]string
	if backend == config.ClusterEtcd {
		endpoints = c.startEtcd()
	}
	for i := range c.ids {
		c.httpAddrs[i] = testport.Addr(t)
	}
	rules := ""
	if rulesYAML != "" {
		c.write("rules.yml", rulesYAML)
		rules = "rule_files: [rules.yml]\n"
	}
	c.write("alertmanager.yml", alertmanagerYAML)
	var clusterYAML []string
	switch backend {
	case config.ClusterRaft:
		clusterYAML = c.raftConfigs()
	case config.ClusterEtcd:
		clusterYAML = c.etcdConfigs(endpoints)
	default:
		t.Fatalf("backend %q", backend)
	}
	for i, id := range c.ids {
		c.cfgs[i] = c.write(id+".yaml", fmt.Sprintf("global:\n  evaluation_interval: 1s\n%salertmanager_config_file: alertmanager.yml\n%s%s", rules, extra.yaml, clusterYAML[i]))
	}
	for i := range c.ids {
		c.launch(i)
	}
	for i := range c.ids {
		c.waitReady(i)
	}
	c.settle(c.all(), 30*time.Second)
	return c
}

// raftConfigs are the nodes' cluster sections on Raft: each advertises its
// proxy, and the peers list names the proxies.
func (c *faultCluster) raftConfigs() []string {
	binds, advs := make([]string, len(c.ids)), make([]string, len(c.ids))
	var peers strings.Builder
	for i, id := range c.ids {
		binds[i] = testport.Addr(c.t)
		advs[i] = c.net.listen(c.t, id, binds[i])
		fmt.Fprintf(&peers, "    - {id: %s, address: %q, api_url: %q}\n", id, advs[i], "http://"+c.httpAddrs[i])
	}
	out := make([]string, len(c.ids))
	for i, id := range c.ids {
		out[i] = fmt.Sprintf(`cluster:
  backend: raft
  node_id: %s
  bind_addr: %q
  advertise_addr: %q
  peers:
%s`, id, binds[i], advs[i], peers.String())
	}
	return out
}

// startEtcd starts three etcd members and, for each node, a proxy in front
// of each member; it returns each node's endpoints, its proxies.
func (c *faultCluster) startEtcd() [][]string {
	c.etcd = etcdtest.Start(c.t, 3)
	out := make([][]string, len(c.ids))
	for i, id := range c.ids {
		for j, ep := range c.etcd.Endpoints() {
			out[i] = append(out[i], "http://"+c.net.listenFor(c.t, id, fmt.Sprintf("etcd%d", j), strings.TrimPrefix(ep, "http://")))
		}
	}
	return out
}

// etcdConfigs are the nodes' cluster sections on etcd, each node with its
// own endpoints.
func (c *faultCluster) etcdConfigs(endpoints [][]string) []string {
	out := make([]string, len(c.ids))
	for i, id := range c.ids {
		var eps []string
		for _, ep := range endpoints[i] {
			eps = append(eps, fmt.Sprintf("%q", ep))
		}
		out[i] = fmt.Sprintf(`cluster:
  backend: etcd
  node_id: %s
  endpoints: [%s]
  prefix: /vigil-faults
  api_url: %q
`, id, strings.Join(eps, ", "), "http://"+c.httpAddrs[i])
	}
	return out
}

// waitReady waits until node i is ready. A node that could not bind one of
// the fresh ports launchServer chose for it (taken in between by another
// socket) is launched again on others.
func (c *faultCluster) waitReady(i int) {
	c.t.Helper()
	for attempt := 1; ; attempt++ {
		s := c.nodes[i]
		deadline := time.Now().Add(2 * time.Minute)
		for time.Now().Before(deadline) {
			select {
			case err := <-s.done:
				s.done <- err // for whoever waits next
				if attempt < 3 && strings.Contains(s.logs.String(), "address already in use") {
					c.t.Logf("%s could not bind a port (%v); launching it again", c.ids[i], err)
					c.launch(i)
					goto next
				}
				c.t.Fatalf("%s exited during start-up: %v\n%s", c.ids[i], err, s.logs.String())
			default:
			}
			if resp, err := http.Get(s.httpURL + "/-/ready"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		c.t.Fatalf("%s not ready within 2m\n%s", c.ids[i], s.logs.String())
	next:
	}
}

func (c *faultCluster) write(name, body string) string {
	c.t.Helper()
	path := filepath.Join(c.dir, name)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		c.t.Fatal(err)
	}
	return path
}

// launch starts node i on its data directory, without waiting.
func (c *faultCluster) launch(i int) {
	c.nodes[i] = launchServer(c.t, filepath.Join(c.dir, c.ids[i]), "--config", c.cfgs[i], "--http-addr", c.httpAddrs[i])
	c.nodes[i].authHeader = c.authHeader
}

func (c *faultCluster) all() []int { return []int{0, 1, 2} }

// except is every node index but those given.
func (c *faultCluster) except(skip ...int) []int {
	var out []int
	for i := range c.ids {
		if indexOfInt(skip, i) < 0 {
			out = append(out, i)
		}
	}
	return out
}

func indexOfInt(xs []int, x int) int {
	for i, v := range xs {
		if v == x {
			return i
		}
	}
	return -1
}

// settle waits until the nodes in among agree on a leader and term, and
// returns the leader's index and the term.
func (c *faultCluster) settle(among []int, timeout time.Duration) (int, uint64) {
	c.t.Helper()
	return c.settleAway(among, -1, timeout)
}

// settleAway is settle for a leader other than node old, which lost it.
func (c *faultCluster) settleAway(among []int, old int, timeout time.Duration) (int, uint64) {
	c.t.Helper()
	var id string
	var term uint64
	waitFor(c.t, fmt.Sprintf("nodes %v to agree on a leader other than %d", among, old), timeout, func() bool {
		id, term = c.agreed(among)
		return id != "" && indexOf(c.ids, id) != old
	})
	return indexOf(c.ids, id), term
}

func (c *faultCluster) agreed(among []int) (string, uint64) {
	var nodes []*server
	for _, i := range among {
		nodes = append(nodes, c.nodes[i])
	}
	// Raft's members are configured and stay three; etcd's are the nodes
	// whose leases live, so a node cut off or killed drops out once its
	// lease runs out, which is also when another node can lead.
	members := len(c.ids)
	if c.backend == config.ClusterEtcd {
		members = len(among)
	}
	return agreedLeader(nodes, members)
}

// nodeOf maps a notification's externalURL to the node that sent it.
func (c *faultCluster) nodeOf(externalURL string) string {
	for i, a := range c.httpAddrs {
		if strings.TrimRight(externalURL, "/") == "http://"+a {
			return c.ids[i]
		}
	}
	return "?" + externalURL
}

var silenceClient = &http.Client{Timeout: 15 * time.Second}

// createSilence posts a silence muting alertname for an hour to s; the
// status is 0 when no answer came.
func createSilence(s *server, alertname, comment string) (string, int) {
	id, code, _ := createSilenceVerbose(s, alertname, comment)
	return id, code
}

// createSilenceVerbose is createSilence, with the body of a failed answer.
func createSilenceVerbose(s *server, alertname, comment string) (string, int, string) {
	body := fmt.Sprintf(`{"matchers":[{"name":"alertname","value":%q,"isRegex":false,"isEqual":true}],
		"startsAt":%q,"endsAt":%q,"createdBy":"test","comment":%q}`,
		alertname, time.Now().Add(-time.Minute).Format(time.RFC3339), time.Now().Add(time.Hour).Format(time.RFC3339), comment)
	resp, err := silenceClient.Post(s.httpURL+"/api/v2/silences", "application/json", strings.NewReader(body))
	if err != nil {
		return "", 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var r struct{ SilenceID string }
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &r) != nil {
		return "", resp.StatusCode, string(b)
	}
	return r.SilenceID, resp.StatusCode, ""
}

// expireSilence expires id through s; the status is 0 when no answer
// came, and the body of a failed answer is returned.
func expireSilence(s *server, id string) (int, string) {
	req, _ := http.NewRequest(http.MethodDelete, s.httpURL+"/api/v2/silence/"+id, nil)
	resp, err := silenceClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

type listedSilence struct {
	ID      string
	Comment string
	Status  struct{ State string }
}

// listSilences reads s's own copy of the silences.
func listSilences(s *server) ([]listedSilence, error) {
	resp, err := silenceClient.Get(s.httpURL + "/api/v2/silences")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	var sils []listedSilence
	return sils, json.NewDecoder(resp.Body).Decode(&sils)
}

// silenceState is id's state on s ("" when s does not know it or did not answer).
func silenceState(s *server, id string) string {
	sils, err := listSilences(s)
	if err != nil {
		return ""
	}
	for _, x := range sils {
		if x.ID == id {
			return x.Status.State
		}
	}
	return ""
}

// checkTermsMonotonic fails the test if, for any group, a notification
// arrived with a term below one already received for that group: the
// receiver-side rule of the fencing token.
func checkTermsMonotonic(t *testing.T, notes []termNote) {
	t.Helper()
	highest := map[string]uint64{}
	for _, n := range notes {
		if n.term == 0 {
			t.Errorf("notification for %s at %s without a term", n.group, n.at.Format(time.StampMilli))
		}
		if h := highest[n.group]; n.term < h {
			t.Errorf("notification for %s at %s with term %d after one with term %d: a stale sender", n.group, n.at.Format(time.StampMilli), n.term, h)
		}
		highest[n.group] = max(highest[n.group], n.term)
	}
}

const faultRules = `groups:
  - name: faults
    rules:
      - {alert: Loud, expr: vector(1)}
      - {alert: Quiet, expr: vector(1)}
      - {alert: Held, expr: vector(1)}
      - {alert: Steady, expr: vector(1)}
`

// faultAlertmanager: Loud and the others repeat every 3 s; Steady only
// every hour, so after its first notification any other is a duplicate
// (a lost notification log, or a failover's in-flight one).
func faultAlertmanager(hookURL string) string {
	return fmt.Sprintf(`route:
  receiver: hook
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 3s
  routes:
    - matchers: ['alertname="Steady"']
      repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: %q
        send_resolved: false
`, hookURL)
}

// TestClusterFaults runs issue 17's fault scenarios against three real
// vigil processes, on each backend (subtests raft and etcd), whose
// consensus links pass through a fault-injecting proxy: on Raft the links
// between the nodes, on etcd each node's links to the three etcd members
// the test runs, so that a partitioned node is cut off from etcd:
//
//  1. the leader partitioned from the others stops notifying; the majority
//     elects a new leader whose notifications carry a higher term, and no
//     notification with an older term arrives after one with a newer term;
//     healed, the old leader rejoins as a follower;
//  2. a silence created on one node while another is partitioned reaches
//     the partitioned node when healed, and suppresses there once it leads;
//  3. all three stopped (SIGTERM) and started again on their data
//     directories keep the silences and the notification log: the silence
//     is still active everywhere and Steady, notified once an hour, is not
//     notified again;
//  4. a node killed with SIGKILL and started again catches up on a silence
//     created while it was down;
//  5. on etcd, the member etcd's own Raft leads killed with SIGKILL: the
//     nodes go on with two members of three (the same leader notifies, a
//     silence write succeeds), and the member restarts;
//  6. at full size (VIGIL_RELIABILITY=full), ten more failovers of the
//     leader, partitioned or killed in turn, each within 10 s.
//
// Over the whole run no notification arrives with a term below one already
// received for its group, and none comes within repeat_interval of the
// previous one of its group more than once per failover.
func TestClusterFaults(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) { testClusterFaults(t, backend) })
	}
}

func testClusterFaults(t *testing.T, backend string) {
	sink := &termSink{}
	hook := httptest.NewServer(sink)
	defer hook.Close()
	const repeat = 3 * time.Second
	c := newFaultCluster(t, backend, faultRules, faultAlertmanager(hook.URL))
	leader, term := c.settle(c.all(), 30*time.Second)
	t.Logf("leader %s, term %d", c.ids[leader], term)
	waitFor(t, "notifications for Loud and Steady", 30*time.Second, func() bool {
		return len(sink.of("Loud", time.Time{}, time.Now())) > 0 && len(sink.of("Steady", time.Time{}, time.Now())) > 0
	})
	failovers := 0

	// 1. Partition the leader.
	time.Sleep(repeat) // a steady stream before the cut
	cutAt := time.Now()
	old, oldTerm := leader, term
	c.net.isolate(c.ids[old])
	leader, term = c.settleAway(c.except(old), old, 20*time.Second)
	elected := time.Now()
	failovers++
	t.Logf("leader %s partitioned: %s elected with term %d after %s", c.ids[old], c.ids[leader], term, elected.Sub(cutAt).Round(10*time.Millisecond))
	if leader == old || term <= oldTerm {
		t.Fatalf("after the partition the majority agrees on %s term %d, want another node with a term above %d", c.ids[leader], term, oldTerm)
	}
	if d := elected.Sub(cutAt); d > 10*time.Second {
		t.Errorf("a new leader %s after the partition, want within 10s", d)
	}
	waitFor(t, "Loud notified with the new term or a later one", 20*time.Second, func() bool {
		for _, n := range sink.of("Loud", cutAt, time.Now()) {
			if n.term >= term { // a later term too, should the leadership move again
				return true
			}
		}
		return false
	})
	resumed := time.Now()
	time.Sleep(2 * repeat) // the partitioned node would notify in this window
	for _, n := range sink.of("", elected, time.Now()) {
		if sender := c.nodeOf(n.externalURL); sender == c.ids[old] || n.term < term {
			t.Errorf("notification for %s from %s with term %d at %s, after %s was elected with term %d: the minority side still notifies",
				n.group, sender, n.term, n.at.Format(time.StampMilli), c.ids[leader], term)
		}
	}
	var lastOld, firstNew time.Time
	for _, n := range sink.of("Loud", time.Time{}, time.Now()) {
		if n.term == oldTerm {
			lastOld = n.at
		}
		if n.term >= term && firstNew.IsZero() {
			firstNew = n.at
		}
	}
	t.Logf("partition: last notification with the old term %s after the cut, first with the new %s after it; Loud resumed %s after the cut",
		lastOld.Sub(cutAt).Round(10*time.Millisecond), firstNew.Sub(cutAt).Round(10*time.Millisecond), resumed.Sub(cutAt).Round(10*time.Millisecond))

	// Healed, the old leader follows the new one.
	c.net.heal(c.ids[old])
	healed := time.Now()
	leader, term = c.settle(c.all(), 30*time.Second)
	t.Logf("healed: all three agree on %s, term %d, %s after the heal", c.ids[leader], term, time.Since(healed).Round(10*time.Millisecond))
	if leader == old {
		t.Errorf("the partitioned old leader %s leads again after the heal (term %d), want it to rejoin as a follower", c.ids[old], term)
	}

	// 2. A silence created on one node while another is partitioned. The
	// partitioned node is a follower, so the leader need not move.
	cut := c.except(leader)[1]
	via := c.except(cut)[0] // the leader or the other follower
	if via == leader {
		via = c.except(cut, leader)[0]
	}
	c.net.isolate(c.ids[cut])
	var quietID string
	waitFor(t, "a silence for Quiet created through "+c.ids[via], 20*time.Second, func() bool {
		quietID, _ = createSilence(c.nodes[via], "Quiet", "while partitioned")
		return quietID != ""
	})
	silencedAt := time.Now()
	waitFor(t, "the silence active on the leader", 10*time.Second, func() bool {
		return silenceState(c.nodes[leader], quietID) == "active"
	})
	time.Sleep(time.Second) // the partitioned node would have it by now, were it connected
	if st := silenceState(c.nodes[cut], quietID); st != "" {
		t.Errorf("partitioned %s knows silence %s (%s): the partition leaks", c.ids[cut], quietID, st)
	}
	c.net.heal(c.ids[cut])
	waitFor(t, "the silence active on "+c.ids[cut]+" after the heal", 20*time.Second, func() bool {
		return silenceState(c.nodes[cut], quietID) == "active"
	})
	// The node that was cut off must honour it when it notifies: move the
	// leadership to it by partitioning whichever node leads instead.
	for attempt := 0; ; attempt++ {
		leader, term = c.settle(c.all(), 30*time.Second)
		if leader == cut {
			break
		}
		if attempt == 8 {
			t.Fatalf("leadership did not reach %s in %d moves", c.ids[cut], attempt)
		}
		c.net.isolate(c.ids[leader])
		c.settleAway(c.except(leader), leader, 20*time.Second)
		failovers++
		c.net.heal(c.ids[leader])
	}
	t.Logf("%s leads, term %d", c.ids[cut], term)
	ledAt := time.Now()
	waitFor(t, "Loud notified by "+c.ids[cut], 20*time.Second, func() bool {
		for _, n := range sink.of("Loud", ledAt, time.Now()) {
			if c.nodeOf(n.externalURL) == c.ids[cut] {
				return true
			}
		}
		return false
	})
	time.Sleep(2 * repeat)
	// One notification may have passed the mute stage before the commit.
	if quiet := sink.of("Quiet", silencedAt.Add(time.Second), time.Now()); len(quiet) > 0 {
		t.Errorf("%d notifications for Quiet after its silence was committed, the last from %s", len(quiet), c.nodeOf(quiet[len(quiet)-1].externalURL))
	}

	// 3. Stop all three and start them again on their data directories.
	steadyBefore := len(sink.of("Steady", time.Time{}, time.Now()))
	for _, i := range c.except(leader) {
		c.nodes[i].stop(t)
	}
	c.nodes[leader].stop(t)
	stopped := time.Now()
	for i := range c.ids {
		c.launch(i)
	}
	for i := range c.ids {
		c.waitReady(i)
	}
	leader, term = c.settle(c.all(), 30*time.Second)
	t.Logf("restarted: %s leads, term %d, %s after the stop", c.ids[leader], term, time.Since(stopped).Round(10*time.Millisecond))
	// A follower ready after the restart may not have applied the log up
	// to the silence yet: followers serve their own copy, which may lag.
	settled := time.Now()
	for i := range c.ids {
		if st := silenceState(c.nodes[i], quietID); st != "active" {
			t.Logf("silence %s on %s when the restarted cluster agreed on a leader: %q", quietID, c.ids[i], st)
		}
		waitFor(t, fmt.Sprintf("silence %s active on %s after the restart", quietID, c.ids[i]), 20*time.Second, func() bool {
			return silenceState(c.nodes[i], quietID) == "active"
		})
	}
	t.Logf("the silence active on all three %s after they agreed on a leader", time.Since(settled).Round(10*time.Millisecond))
	waitFor(t, "Loud notified after the restart", 30*time.Second, func() bool {
		return len(sink.of("Loud", stopped, time.Now())) > 0
	})
	time.Sleep(2 * repeat)
	if n := len(sink.of("Steady", stopped, time.Now())); n > 0 {
		t.Errorf("Steady (repeat_interval 1h) notified %d times after the restart: the notification log was lost", n)
	}
	if n := len(sink.of("Quiet", stopped, time.Now())); n > 0 {
		t.Errorf("Quiet notified %d times after the restart: its silence was lost", n)
	}

	// 4. kill -9 the leader, create a silence while it is down, start it again.
	killedAt := time.Now()
	killed, killedTerm := leader, term
	c.nodes[killed].kill9(t)
	c.nodes[killed] = nil
	leader, term = c.settleAway(c.except(killed), killed, 20*time.Second)
	failovers++
	t.Logf("kill -9 of %s: %s elected with term %d after %s", c.ids[killed], c.ids[leader], term, time.Since(killedAt).Round(10*time.Millisecond))
	if term <= killedTerm {
		t.Errorf("term %d after the kill, want above %d", term, killedTerm)
	}
	var heldID string
	waitFor(t, "a silence for Held created while "+c.ids[killed]+" is down", 20*time.Second, func() bool {
		heldID, _ = createSilence(c.nodes[c.except(killed)[0]], "Held", "while down")
		return heldID != ""
	})
	c.launch(killed)
	c.waitReady(killed)
	waitFor(t, c.ids[killed]+" catching up on silence "+heldID, 30*time.Second, func() bool {
		return silenceState(c.nodes[killed], heldID) == "active" && silenceState(c.nodes[killed], quietID) == "active"
	})
	leader, term = c.settle(c.all(), 30*time.Second)
	t.Logf("%s rejoined; %s leads, term %d", c.ids[killed], c.ids[leader], term)

	// 5. On etcd, kill -9 the etcd member that leads etcd's own Raft.
	if c.etcd != nil {
		c.killEtcdLeader(sink, leader, term)
	}

	// At full size, more failovers: the leader partitioned and healed, or
	// killed and started again, in turn. Each must elect a new leader
	// within 10 s whose notifications resume.
	rounds := 0
	if fullReliability() {
		rounds = 10
	}
	var elections, resumptions []time.Duration
	for r := 0; r < rounds; r++ {
		old, oldTerm := c.settle(c.all(), 30*time.Second)
		time.Sleep(repeat) // a stream to interrupt
		at := time.Now()
		kill := r%2 == 1
		if kill {
			c.nodes[old].kill9(t)
		} else {
			c.net.isolate(c.ids[old])
		}
		leader, term = c.settleAway(c.except(old), old, 20*time.Second)
		failovers++
		elections = append(elections, time.Since(at))
		if term <= oldTerm {
			t.Errorf("round %d: term %d after the failover, want above %d", r, term, oldTerm)
		}
		waitFor(t, fmt.Sprintf("round %d: Loud notified with term %d or later", r, term), 20*time.Second, func() bool {
			for _, n := range sink.of("Loud", at, time.Now()) {
				if n.term >= term { // a later term too, should the leadership move again
					return true
				}
			}
			return false
		})
		resumptions = append(resumptions, time.Since(at))
		if kill {
			c.launch(old)
			c.waitReady(old)
		} else {
			c.net.heal(c.ids[old])
		}
	}
	if rounds > 0 {
		slices.Sort(elections)
		slices.Sort(resumptions)
		t.Logf("%d more failovers: new leader after min %s, median %s, max %s; notifications resumed after min %s, median %s, max %s",
			rounds, elections[0].Round(10*time.Millisecond), elections[rounds/2].Round(10*time.Millisecond), elections[rounds-1].Round(10*time.Millisecond),
			resumptions[0].Round(10*time.Millisecond), resumptions[rounds/2].Round(10*time.Millisecond), resumptions[rounds-1].Round(10*time.Millisecond))
		if elections[rounds-1] > 10*time.Second {
			t.Errorf("the slowest failover took %s, want within 10s", elections[rounds-1])
		}
	}

	// Over the whole run: the receiver never saw a stale term, and Steady
	// was notified at most once, plus one per failover in flight.
	checkTermsMonotonic(t, sink.of("", time.Time{}, time.Now()))
	loud := sink.of("Loud", time.Time{}, time.Now())
	dups, longest := 0, time.Duration(0)
	for i := 1; i < len(loud); i++ {
		gap := loud[i].at.Sub(loud[i-1].at)
		if gap < repeat-time.Second {
			dups++
			t.Logf("Loud notified twice %s apart at %s (terms %d, %d)", gap.Round(time.Millisecond), loud[i].at.Format(time.StampMilli), loud[i-1].term, loud[i].term)
		}
		longest = max(longest, gap)
	}
	t.Logf("Loud: %d notifications, %d closer than repeat_interval, longest gap %s (repeat_interval %s; the restart's gap included)", len(loud), dups, longest.Round(10*time.Millisecond), repeat)
	if dups > failovers {
		t.Errorf("Loud notified %d times within repeat_interval of the previous one over %d failovers, want at most one per failover", dups, failovers)
	}
	steady := len(sink.of("Steady", time.Time{}, time.Now()))
	t.Logf("Steady notified %d times over %d failovers and a full restart (%d before the restart)", steady, failovers, steadyBefore)
	if steady > 1+failovers {
		t.Errorf("Steady (repeat_interval 1h) notified %d times over %d failovers, want at most %d", steady, failovers, 1+failovers)
	}
	if u := c.net.unidentified.Load(); u > 0 {
		t.Logf("%d Raft connections the proxy could not attribute to a sender were dropped", u)
	}
	for _, s := range c.nodes {
		s.stop(t)
	}
}

// killEtcdLeader kills (SIGKILL) the etcd member that leads etcd's Raft
// while vigil node leader leads with term, checks that the nodes go on
// with the other two members, and restarts it. etcd's new leader keeps
// the leases (it extends them), so vigil's leader need not change; should
// it change, the new term must be higher.
func (c *faultCluster) killEtcdLeader(sink *termSink, leader int, term uint64) {
	t := c.t
	t.Helper()
	var member int
	waitFor(t, "etcd naming its leader", 10*time.Second, func() bool {
		member = c.etcd.Leader()
		return member >= 0
	})
	at := time.Now()
	c.etcd.Kill(member)
	var next int
	waitFor(t, "etcd electing another leader", 20*time.Second, func() bool {
		next = c.etcd.Leader()
		return next >= 0 && next != member
	})
	etcdElected := time.Since(at)
	var id string
	waitFor(t, "a silence for Held written with an etcd member down", 20*time.Second, func() bool {
		id, _ = createSilence(c.nodes[c.except(leader)[0]], "Held", "etcd member down")
		return id != ""
	})
	written := time.Since(at)
	waitFor(t, "Loud notified with an etcd member down", 20*time.Second, func() bool {
		return len(sink.of("Loud", at.Add(time.Second), time.Now())) > 0
	})
	notified := time.Since(at)
	now, nowTerm := c.settle(c.all(), 30*time.Second)
	if nowTerm < term || (now != leader && nowTerm == term) {
		t.Errorf("after etcd's leader was killed %s leads with term %d, before %s with term %d", c.ids[now], nowTerm, c.ids[leader], term)
	}
	for i := range c.ids {
		waitFor(t, fmt.Sprintf("silence %s active on %s", id, c.ids[i]), 20*time.Second, func() bool {
			return silenceState(c.nodes[i], id) == "active"
		})
	}
	c.etcd.Restart(member)
	t.Logf("kill -9 of etcd member %d (etcd's leader): etcd%d elected after %s; a silence written after %s, Loud notified after %s; vigil's leader %s term %d (before %s term %d); the member restarted",
		member, next, etcdElected.Round(10*time.Millisecond), written.Round(10*time.Millisecond), notified.Round(10*time.Millisecond),
		c.ids[now], nowTerm, c.ids[leader], term)
}
