package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-observability/vigil/internal/loadgen"
	"github.com/vigil-observability/vigil/internal/storage/clickhouse/chtest"
	"github.com/vigil-observability/vigil/internal/testport"
)

const writersRules = `groups:
  - name: writers
    rules:
      - {record: writers_recorded, expr: vector(1)}
      - {alert: Steady, expr: vector(1)}
      - alert: Warm
        expr: vector(1)
        for: 30s
`

// promValue is the one sample q returns on s, or -1 when it returns none
// or several.
func promValue(t *testing.T, s *server, q string) float64 {
	t.Helper()
	res := s.promQuery(t, q)
	if len(res) != 1 {
		return -1
	}
	v, err := strconv.ParseFloat(fmt.Sprint(res[0].Value[1]), 64)
	if err != nil {
		t.Fatalf("%s: value %v", q, res[0].Value[1])
	}
	return v
}

// alertActiveAt is when alertname became active on s, per /api/v1/alerts
// (zero when it is not active there).
func alertActiveAt(t *testing.T, s *server, alertname string) (time.Time, string) {
	t.Helper()
	var r struct {
		Data struct {
			Alerts []struct {
				Labels   map[string]string `json:"labels"`
				State    string            `json:"state"`
				ActiveAt time.Time         `json:"activeAt"`
			} `json:"alerts"`
		} `json:"data"`
	}
	if code := s.getJSON(t, "/api/v1/alerts", &r); code != http.StatusOK {
		t.Fatalf("/api/v1/alerts: HTTP %d", code)
	}
	for _, a := range r.Data.Alerts {
		if a.Labels["alertname"] == alertname {
			return a.ActiveAt, a.State
		}
	}
	return time.Time{}, ""
}

// TestClusterWritersEmbedded: on the embedded store every node evaluates
// every rule on its own data, like a Prometheus HA pair, so a recorded
// series and ALERTS are on each node, not only on the leader; only the
// leader notifies (one notification of an alert repeated hourly); and a
// new leader's "for" timers are warm: it has evaluated the alert all
// along, so its alert has been active since before it led.
func TestClusterWritersEmbedded(t *testing.T) {
	sink := &termSink{}
	hook := httptest.NewServer(sink)
	defer hook.Close()
	c := newFaultCluster(t, "raft", writersRules, fmt.Sprintf(`route:
  receiver: hook
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: %q
        send_resolved: false
`, hook.URL))
	leader, term := c.settle(c.all(), 30*time.Second)

	// Evaluated every second on each node: a node that only had what it
	// recorded while leading (at most one node here) would count none.
	for i, n := range c.nodes {
		waitFor(t, c.ids[i]+" recording writers_recorded itself", 20*time.Second, func() bool {
			return promValue(t, n, "count_over_time(writers_recorded[5s])") >= 3 &&
				promValue(t, n, `count(ALERTS{alertname="Steady",alertstate="firing"})`) == 1
		})
	}
	waitFor(t, "Steady notified", 20*time.Second, func() bool { return len(sink.of("Steady", time.Time{}, time.Now())) > 0 })
	time.Sleep(3 * time.Second) // room for a second notification, from any node
	steady := sink.of("Steady", time.Time{}, time.Now())
	if len(steady) != 1 {
		t.Errorf("%d notifications of Steady (repeat_interval 1h), want 1", len(steady))
	}
	for _, n := range steady {
		if from := c.nodeOf(n.externalURL); from != c.ids[leader] || n.term != term {
			t.Errorf("Steady notified by %s with term %d, want the leader %s with %d", from, n.term, c.ids[leader], term)
		}
	}

	// Warm (for: 30s) is pending on every node; the leader dies before it
	// fires. The new leader's Warm has been active since before the kill,
	// and it notifies Warm, which the old leader never did.
	var activeAt [3]time.Time
	for i, n := range c.nodes {
		at, state := alertActiveAt(t, n, "Warm")
		if state != "pending" {
			t.Fatalf("Warm is %q on %s, want pending (the test took too long to get here)", state, c.ids[i])
		}
		activeAt[i] = at
	}
	killedAt := time.Now()
	c.nodes[leader].kill9(t)
	next, newTerm := c.settleAway(c.except(leader), leader, 15*time.Second)
	at, _ := alertActiveAt(t, c.nodes[next], "Warm")
	if !at.Equal(activeAt[next]) || !at.Before(killedAt) {
		t.Errorf("Warm active on the new leader %s since %s, want %s, before the kill at %s: its for timer restarted",
			c.ids[next], at, activeAt[next], killedAt)
	}
	waitFor(t, "Warm notified by the new leader", 45*time.Second, func() bool {
		for _, n := range sink.of("Warm", killedAt, time.Now()) {
			if n.term == newTerm {
				return true
			}
		}
		return false
	})
	for _, n := range sink.of("", killedAt, time.Now()) {
		if from := c.nodeOf(n.externalURL); from != c.ids[next] {
			t.Errorf("%s notified by %s after the failover, want only the new leader %s", n.group, from, c.ids[next])
		}
	}
}

// TestClusterWritersClickHouse: two nodes of a cluster on one
// clickhouse-server. The leader alone evaluates the rules and writes what
// both scrape, so a series recorded (or a target scraped) every second has
// one sample a second, not two; each node
// writes the span metrics of the spans it ingested under its own
// vigil_node, so their sum across nodes counts every span once.
func TestClusterWritersClickHouse(t *testing.T) {
	ch := chtest.Start(t) // skips without clickhouse-server
	dir := t.TempDir()
	ids := []string{"n1", "n2"}
	httpAddrs, raftAddrs := make([]string, 2), make([]string, 2)
	var peers strings.Builder
	for i, id := range ids {
		httpAddrs[i], raftAddrs[i] = testport.Addr(t), testport.Addr(t)
		fmt.Fprintf(&peers, "    - {id: %s, address: %q, api_url: %q}\n", id, raftAddrs[i], "http://"+httpAddrs[i])
	}
	if err := os.WriteFile(filepath.Join(dir, "rules.yml"), []byte(writersRules), 0o644); err != nil {
		t.Fatal(err)
	}
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "writers_target_value 1")
	}))
	defer target.Close()
	nodes := make([]*server, 2)
	for i, id := range ids {
		cfg := filepath.Join(dir, id+".yaml")
		body := fmt.Sprintf(`global:
  evaluation_interval: 1s
  scrape_interval: 1s
rule_files: [rules.yml]
scrape_configs:
  - job_name: writers
    static_configs: [{targets: [%q]}]
storage:
  backend: clickhouse
  clickhouse:
    dsn: %s
cluster:
  backend: raft
  node_id: %s
  bind_addr: %q
  peers:
%s`, strings.TrimPrefix(target.URL, "http://"), ch.DSN("vigil"), id, raftAddrs[i], peers.String())
		if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		nodes[i] = launchServer(t, filepath.Join(dir, id), "--config", cfg, "--http-addr", httpAddrs[i])
	}
	for _, n := range nodes {
		n.waitReady(t)
	}
	var leaderID string
	waitFor(t, "both nodes naming one leader", 30*time.Second, func() bool {
		leaderID, _ = agreedLeader(nodes, 2)
		return leaderID != ""
	})

	// Spans to both nodes: 3 traces of 4 spans to n1, 5 of 4 to n2.
	client := &http.Client{Timeout: 10 * time.Second}
	spans := []int{3 * 4, 5 * 4}
	for i, n := range spans {
		td, _ := loadgen.New(uint64(40+i)).Traces(n/4, 4, time.Now())
		if err := loadgen.PostTraces(context.Background(), client, nodes[i].otlpHTTPURL, td); err != nil {
			t.Fatal(err)
		}
	}
	sent := spans[0] + spans[1]

	// One writer: a series recorded each second has about ten samples in
	// ten seconds, from either node (two writers would give twenty).
	waitFor(t, "writers_recorded recorded and the target scraped for 12s", 40*time.Second, func() bool {
		return promValue(t, nodes[0], "count_over_time(writers_recorded[12s])") >= 10 &&
			promValue(t, nodes[0], `count_over_time(up{job="writers"}[12s])`) >= 10
	})
	for i, n := range nodes {
		if got := promValue(t, n, "count_over_time(writers_recorded[10s])"); got < 8 || got > 11 {
			t.Errorf("writers_recorded has %v samples in 10s on %s, want about 10: one evaluator", got, ids[i])
		}
		// Both nodes scrape the target each second; the leader writes.
		if got := promValue(t, n, `count_over_time(up{job="writers"}[10s])`); got < 8 || got > 11 {
			t.Errorf("up of the scraped target has %v samples in 10s on %s, want about 10: one writer", got, ids[i])
		}
		if got := promValue(t, n, `count(ALERTS{alertname="Steady"})`); got != 1 {
			t.Errorf("%v ALERTS series for Steady on %s, want 1", got, ids[i])
		}
	}

	// An instance registered with the follower is known to the follower
	// alone, which scrapes it as the job "registry" and writes it: one
	// writer, and its samples reach the shared store.
	follower := nodes[0]
	if ids[0] == leaderID {
		follower = nodes[1]
	}
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(target.URL, "http://"))
	reg := fmt.Sprintf(`{"ID": "registered-1", "Name": "registered", "Address": %q, "Port": %s}`, host, port)
	req, _ := http.NewRequest(http.MethodPut, follower.httpURL+"/v1/agent/service/register", strings.NewReader(reg))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("register with the follower: HTTP %d", resp.StatusCode)
	}
	waitFor(t, "the instance registered with the follower scraped into the shared store for 12s", 40*time.Second, func() bool {
		return promValue(t, nodes[0], `count_over_time(up{job="registered"}[12s])`) >= 10
	})
	for i, n := range nodes {
		if got := promValue(t, n, `count_over_time(up{job="registered",instance="registered-1"}[10s])`); got < 8 || got > 11 {
			t.Errorf("up of the instance registered with the follower has %v samples in 10s on %s, want about 10: one writer", got, ids[i])
		}
	}

	// The span metrics flush every 15s; each node's under its node id.
	waitFor(t, "the span metrics of every span sent, summed over the nodes", 45*time.Second, func() bool {
		return promValue(t, nodes[1], "sum(traces_span_metrics_calls_total)") == float64(sent)
	})
	for i, n := range nodes {
		if got := promValue(t, n, fmt.Sprintf(`sum(traces_span_metrics_calls_total{vigil_node=%q})`, ids[i])); got != float64(spans[i]) {
			t.Errorf("span metrics under vigil_node=%q: %v calls, want %d (the spans it ingested)", ids[i], got, spans[i])
		}
	}

	// The doctor: the follower leaves the checks of the shared store to the
	// leader (one finding, not one per node) and runs its own.
	for i, n := range nodes {
		var rep struct {
			Skipped []string `json:"skipped"`
		}
		if code := n.getJSON(t, "/api/doctor?refresh=1", &rep); code != http.StatusOK {
			t.Fatalf("/api/doctor on %s: HTTP %d", ids[i], code)
		}
		if ids[i] == leaderID {
			if len(rep.Skipped) != 0 {
				t.Errorf("the leader %s skipped %v, want every check", ids[i], rep.Skipped)
			}
			continue
		}
		if !slices.Contains(rep.Skipped, "rules") || !slices.Contains(rep.Skipped, "logs") || slices.Contains(rep.Skipped, "ingest") {
			t.Errorf("the follower %s skipped %v, want the shared store's checks (rules, logs...), not its own (ingest)", ids[i], rep.Skipped)
		}
	}
}
