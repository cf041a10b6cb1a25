package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-observability/vigil/internal/alerting"
	"github.com/vigil-observability/vigil/internal/consensus/etcd/etcdtest"
	"github.com/vigil-observability/vigil/internal/testport"
)

// termSink records each webhook notification's group, fencing token and
// sender (its externalURL, which is the sender's HTTP address).
type termSink struct {
	mu    sync.Mutex
	notes []termNote
}

type termNote struct {
	at    time.Time
	group string // the alertname it is grouped by
	term  uint64 // X-Vigil-Leader-Term; 0 when missing
	// externalURL is the sending node's.
	externalURL string
}

func (s *termSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var p struct {
		GroupLabels map[string]string
		ExternalURL string `json:"externalURL"`
	}
	if err := json.NewDecoder(r.Body).Decode(&p); err == nil {
		term, _ := strconv.ParseUint(r.Header.Get(alerting.LeaderTermHeader), 10, 64)
		s.mu.Lock()
		s.notes = append(s.notes, termNote{at: time.Now(), group: p.GroupLabels["alertname"], term: term, externalURL: p.ExternalURL})
		s.mu.Unlock()
	}
	w.WriteHeader(http.StatusOK)
}

// of returns the notifications of group received in [from, to); every
// group's for "".
func (s *termSink) of(group string, from, to time.Time) []termNote {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []termNote
	for _, n := range s.notes {
		if (group == "" || n.group == group) && !n.at.Before(from) && n.at.Before(to) {
			out = append(out, n)
		}
	}
	return out
}

type clusterAnswer struct {
	Status string
	Data   struct {
		Leader  string
		Term    uint64
		Members []struct {
			ID, Address, State string
			CommitIndex        uint64 `json:"commit_index"`
		}
	}
}

func (s *server) cluster() (clusterAnswer, error) {
	var a clusterAnswer
	req, err := http.NewRequest(http.MethodGet, s.httpURL+"/api/v1/cluster", nil)
	if err != nil {
		return a, err
	}
	if s.authHeader != "" {
		req.Header.Set("Authorization", s.authHeader)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return a, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return a, fmt.Errorf("status %d", resp.StatusCode)
	}
	return a, json.NewDecoder(resp.Body).Decode(&a)
}

// agreedLeader is the leader and term every node in nodes reports, or ""
// while they disagree, know none, or list other than members members.
func agreedLeader(nodes []*server, members int) (string, uint64) {
	var leader string
	var term uint64
	for i, n := range nodes {
		a, err := n.cluster()
		if err != nil || a.Status != "success" || a.Data.Leader == "" || len(a.Data.Members) != members {
			return "", 0
		}
		if i > 0 && (a.Data.Leader != leader || a.Data.Term != term) {
			return "", 0
		}
		leader, term = a.Data.Leader, a.Data.Term
	}
	return leader, term
}

// TestClusterOneNotifier runs three vigil processes on embedded Raft: one
// notification stream (the leader's, carrying its term), a silence posted
// to a follower replicated to all three and suppressing, the same leader
// and term from every node's /api/v1/cluster, and after kill -9 of the
// leader a new one within 10 s whose notifications carry a higher term
// and still honour the silence.
func TestClusterOneNotifier(t *testing.T) {
	sink := &termSink{}
	hook := httptest.NewServer(sink)
	defer hook.Close()

	const repeat = 3 * time.Second
	dir := t.TempDir()
	ids := []string{"n1", "n2", "n3"}
	httpAddrs, raftAddrs := make([]string, 3), make([]string, 3)
	var peers strings.Builder
	for i, id := range ids {
		httpAddrs[i], raftAddrs[i] = testport.Addr(t), testport.Addr(t)
		fmt.Fprintf(&peers, "    - {id: %s, address: %q, api_url: %q}\n", id, raftAddrs[i], "http://"+httpAddrs[i])
	}
	write := func(name, body string) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	write("rules.yml", `groups:
  - name: cluster
    rules:
      - alert: Loud
        expr: vector(1)
      - alert: Quiet
        expr: vector(1)
`)
	write("alertmanager.yml", fmt.Sprintf(`route:
  receiver: hook
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: %s
receivers:
  - name: hook
    webhook_configs:
      - url: %q
        send_resolved: false
`, amDuration(repeat), hook.URL))
	nodes := make([]*server, 3)
	for i, id := range ids {
		cfg := write(id+".yaml", fmt.Sprintf(`global:
  evaluation_interval: 1s
rule_files: [rules.yml]
alertmanager_config_file: alertmanager.yml
cluster:
  backend: raft
  node_id: %s
  bind_addr: %q
  peers:
%s`, id, raftAddrs[i], peers.String()))
		nodes[i] = launchServer(t, filepath.Join(dir, id), "--config", cfg, "--http-addr", httpAddrs[i])
		if i == 0 {
			// Alone, the first node has no quorum: up, but not ready.
			waitFor(t, "n1's /-/ready to say it knows no leader", time.Minute, func() bool {
				resp, err := http.Get(nodes[0].httpURL + "/-/ready")
				if err != nil {
					return false
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				return resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(body), "no cluster leader")
			})
		}
	}
	for _, n := range nodes {
		n.waitReady(t)
	}

	var leaderID string
	var term uint64
	var leader *server
	var followers []*server
	// settle waits for every node to name the same leader and term.
	settle := func() {
		t.Helper()
		waitFor(t, "the same leader and term from every live node's /api/v1/cluster", 30*time.Second, func() bool {
			leaderID, term = agreedLeader(nodes, 3)
			return leaderID != ""
		})
		leader, followers = nodes[indexOf(ids, leaderID)], nil
		for i, n := range nodes {
			if ids[i] != leaderID {
				followers = append(followers, n)
			}
		}
	}
	settle()
	t.Logf("leader %s, term %d", leaderID, term)
	// Every node gives the same picture of the members, each as it
	// reports itself: a state and progress for all three, from any node.
	waitFor(t, "the same members' states and progress from every node", 30*time.Second, func() bool {
		var first string
		for i, n := range nodes {
			a, err := n.cluster()
			if err != nil {
				return false
			}
			var b strings.Builder
			for _, m := range a.Data.Members {
				if m.CommitIndex == 0 || (m.State != "leader") != (m.ID != leaderID) || (m.State != "leader" && m.State != "follower") {
					return false
				}
				fmt.Fprintf(&b, "%s=%s ", m.ID, m.State)
			}
			if i == 0 {
				first = b.String()
			} else if b.String() != first {
				return false
			}
		}
		return true
	})

	// Steady state: one stream, the leader's, repeat_interval apart. On a
	// machine loaded enough to miss a leader lease the leadership may move
	// during the window; a window is judged only if it did not.
	waitFor(t, "a notification for Loud", 30*time.Second, func() bool {
		return len(sink.of("Loud", time.Time{}, time.Now())) > 0
	})
	for attempt := 1; ; attempt++ {
		from := time.Now()
		time.Sleep(4 * repeat) // a window to count notifications in, not an assertion
		loud := sink.of("Loud", from, time.Now())
		before := term
		if settle(); term != before {
			if attempt == 3 {
				t.Fatalf("leadership moved during each of %d windows (now %s, term %d)", attempt, leaderID, term)
			}
			t.Logf("leadership moved to %s (term %d) during the window; counting again", leaderID, term)
			continue
		}
		if len(loud) < 2 || len(loud) > 5 {
			t.Errorf("%d notifications for Loud in %s with repeat_interval %s, want 2 to 5 (one stream)", len(loud), 4*repeat, repeat)
		}
		for i, n := range loud {
			if n.term != term {
				t.Errorf("notification %d carries term %d, want the leader's %d", i, n.term, term)
			}
			if i > 0 && n.at.Sub(loud[i-1].at) < repeat-time.Second {
				t.Errorf("notifications %d and %d for Loud %s apart, under repeat_interval %s: a duplicate", i-1, i, n.at.Sub(loud[i-1].at), repeat)
			}
		}
		t.Logf("steady state: %d notifications for Loud in %s, all with term %d", len(loud), 4*repeat, term)
		break
	}

	// A silence posted to a follower: committed, visible everywhere, and
	// the leader stops notifying Quiet.
	var silenceID string
	waitFor(t, "a silence created through a follower", 15*time.Second, func() bool {
		body := fmt.Sprintf(`{"matchers":[{"name":"alertname","value":"Quiet","isRegex":false,"isEqual":true}],
			"startsAt":%q,"endsAt":%q,"createdBy":"test","comment":"cluster"}`,
			time.Now().Format(time.RFC3339), time.Now().Add(time.Hour).Format(time.RFC3339))
		resp, err := http.Post(followers[0].httpURL+"/api/v2/silences", "application/json", strings.NewReader(body))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var r struct{ SilenceID string }
		if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&r) != nil {
			return false
		}
		silenceID = r.SilenceID
		return silenceID != ""
	})
	silencedAt := time.Now()
	for i, n := range nodes {
		waitFor(t, fmt.Sprintf("silence %s active on %s", silenceID, ids[i]), 10*time.Second, func() bool {
			var sils []struct {
				ID     string
				Status struct{ State string }
			}
			resp, err := http.Get(n.httpURL + "/api/v2/silences")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			if json.NewDecoder(resp.Body).Decode(&sils) != nil {
				return false
			}
			for _, s := range sils {
				if s.ID == silenceID {
					return s.Status.State == "active"
				}
			}
			return false
		})
	}
	time.Sleep(2 * repeat) // Quiet would be repeated twice in this window
	// One notification may have passed the mute stage before the commit.
	if quiet := sink.of("Quiet", silencedAt.Add(time.Second), time.Now()); len(quiet) > 0 {
		t.Errorf("%d notifications for Quiet after its silence was committed", len(quiet))
	}
	if len(sink.of("Loud", silencedAt, time.Now())) == 0 {
		t.Error("no notification for Loud after the silence either: the check above proves nothing")
	}

	// kill -9 the leader: the others elect a new one, which resumes
	// notifying with a higher term, and keeps honouring the silence.
	settle()
	killedAt := time.Now()
	leader.kill9(t)
	var newLeader string
	var newTerm uint64
	waitFor(t, "a new leader agreed on by the survivors", 15*time.Second, func() bool {
		newLeader, newTerm = agreedLeader(followers, 3)
		return newLeader != "" && newLeader != leaderID
	})
	failover := time.Since(killedAt)
	t.Logf("new leader %s, term %d, %s after kill -9", newLeader, newTerm, failover.Round(10*time.Millisecond))
	if failover > 10*time.Second {
		t.Errorf("failover took %s, want within 10s", failover)
	}
	if newTerm <= term {
		t.Errorf("new term %d, want above %d", newTerm, term)
	}
	waitFor(t, "Loud notified again with the new leader's term", 30*time.Second, func() bool {
		for _, n := range sink.of("Loud", killedAt, time.Now()) {
			if n.term == newTerm {
				return true
			}
		}
		return false
	})
	t.Logf("notifications resumed %s after kill -9", time.Since(killedAt).Round(10*time.Millisecond))
	for _, n := range sink.of("Loud", killedAt, time.Now()) {
		if n.term != term && n.term != newTerm {
			t.Errorf("notification after the kill carries term %d, want %d or %d", n.term, term, newTerm)
		}
	}
	resumed := time.Now()
	time.Sleep(repeat + time.Second)
	if quiet := sink.of("Quiet", resumed, time.Now()); len(quiet) > 0 {
		t.Errorf("%d notifications for Quiet from the new leader: the silence was lost", len(quiet))
	}

	// SIGTERM the new leader, then the last node: each stops cleanly, the
	// leader after handing leadership to the other, which still has the
	// votes of two nodes.
	leaderNow := nodes[indexOf(ids, newLeader)]
	leaderNow.stop(t)
	if strings.Contains(leaderNow.logs.String(), "leadership not handed on") {
		t.Errorf("the leader stopped without handing leadership on:\n%s", tail(leaderNow.logs.String(), 2000))
	}
	for _, n := range followers {
		if n != leaderNow {
			n.stop(t)
		}
	}
}

func indexOf(ids []string, id string) int {
	for i, v := range ids {
		if v == id {
			return i
		}
	}
	return -1
}

// amDuration prints d as Alertmanager's config reads durations.
func amDuration(d time.Duration) string { return strconv.Itoa(int(d.Seconds())) + "s" }

// TestClusterEtcd: two vigil nodes on one etcd agree on a leader, only it
// notifies, with its fencing token, and a silence posted to the other is
// forwarded to it (at the address it published in etcd) and suppresses.
func TestClusterEtcd(t *testing.T) {
	etcdCluster := etcdtest.Start(t, 1) // skips without the etcd binary
	sink := &termSink{}
	hook := httptest.NewServer(sink)
	defer hook.Close()
	dir := t.TempDir()
	write := func(name, body string) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	write("rules.yml", "groups:\n  - name: e\n    rules:\n      - {alert: Loud, expr: vector(1)}\n      - {alert: Quiet, expr: vector(1)}\n")
	write("alertmanager.yml", fmt.Sprintf(`route: {receiver: hook, group_by: [alertname], group_wait: 1s, group_interval: 1s, repeat_interval: 3s}
receivers:
  - name: hook
    webhook_configs: [{url: %q, send_resolved: false}]
`, hook.URL))
	ids := []string{"e1", "e2"}
	nodes := make([]*server, len(ids))
	for i, id := range ids {
		h := testport.Addr(t)
		cfg := write(id+".yaml", fmt.Sprintf(`global: {evaluation_interval: 1s}
rule_files: [rules.yml]
alertmanager_config_file: alertmanager.yml
cluster: {backend: etcd, endpoints: [%q], prefix: /vigil-e2e, node_id: %s}
`, etcdCluster.Endpoints()[0], id))
		nodes[i] = launchServer(t, filepath.Join(dir, id), "--config", cfg, "--http-addr", h)
	}
	for _, n := range nodes {
		n.waitReady(t)
	}
	var leaderID string
	var term uint64
	waitFor(t, "both nodes naming the same leader and term", 30*time.Second, func() bool {
		leaderID, term = agreedLeader(nodes, 2)
		return leaderID != ""
	})
	follower := nodes[1-indexOf(ids, leaderID)]
	waitFor(t, "a notification for Loud", 30*time.Second, func() bool {
		return len(sink.of("Loud", time.Time{}, time.Now())) > 0
	})
	for _, n := range sink.of("Loud", time.Time{}, time.Now()) {
		if n.term != term {
			t.Errorf("notification with term %d, want the leader's %d", n.term, term)
		}
	}
	var silenceID string
	waitFor(t, "a silence created through the follower", 15*time.Second, func() bool {
		body := fmt.Sprintf(`{"matchers":[{"name":"alertname","value":"Quiet","isRegex":false,"isEqual":true}],
			"startsAt":%q,"endsAt":%q,"createdBy":"test","comment":"etcd"}`,
			time.Now().Format(time.RFC3339), time.Now().Add(time.Hour).Format(time.RFC3339))
		resp, err := http.Post(follower.httpURL+"/api/v2/silences", "application/json", strings.NewReader(body))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var r struct{ SilenceID string }
		if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&r) != nil {
			return false
		}
		silenceID = r.SilenceID
		return silenceID != ""
	})
	silencedAt := time.Now()
	time.Sleep(7 * time.Second) // Quiet would be repeated twice in this window
	if quiet := sink.of("Quiet", silencedAt.Add(time.Second), time.Now()); len(quiet) > 0 {
		t.Errorf("%d notifications for Quiet after silence %s was committed", len(quiet), silenceID)
	}
	loud := sink.of("Loud", silencedAt, time.Now())
	if len(loud) == 0 || len(loud) > 3 {
		t.Errorf("%d notifications for Loud in 7s with repeat_interval 3s, want 1 to 3 (one stream)", len(loud))
	}
	for _, n := range nodes {
		n.stop(t)
	}
}
