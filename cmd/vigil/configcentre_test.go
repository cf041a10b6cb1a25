package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/vigil-observability/vigil/internal/config"
)

// ccDo sends one request to the configuration centre and returns the
// status and body.
func ccDo(t *testing.T, client *http.Client, method, url, authorization, contentType, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestConfigCentre runs the configuration centre in a real server: a
// watcher woken by a put, a gray seen only by its cohort, a kill -9 that
// loses no acknowledged version, and a SIGTERM that ends a long poll at
// once.
func TestConfigCentre(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir)
	c := &http.Client{Timeout: time.Minute}
	item := s.httpURL + "/api/v1/config/shop/payment/settings"

	code, body := ccDo(t, c, "PUT", item+"?author=ann&message=first", "", "application/yaml", "timeout: 2s\n")
	if code != 200 || !strings.Contains(body, `"version":1`) {
		t.Fatalf("put: %d %s", code, body)
	}
	var got struct {
		Data struct {
			Content string `json:"content"`
			Version int    `json:"version"`
			MD5     string `json:"md5"`
			Gray    bool   `json:"gray"`
		} `json:"data"`
	}
	code, body = ccDo(t, c, "GET", item+"?instance=pod-a", "", "", "")
	if code != 200 || json.Unmarshal([]byte(body), &got) != nil || got.Data.Content != "timeout: 2s\n" {
		t.Fatalf("get: %d %s", code, body)
	}

	// A watcher holding version 1 is answered by the next put.
	woke := make(chan string, 1)
	go func() {
		_, body := ccDo(t, c, "GET", item+"?instance=pod-a&md5="+got.Data.MD5+"&wait=30s", "", "", "")
		woke <- body
	}()
	s.waitWatches(t, 1)
	if code, body := ccDo(t, c, "PUT", item, "", "application/yaml", "timeout: 3s\n"); code != 200 {
		t.Fatalf("put: %d %s", code, body)
	}
	select {
	case body := <-woke:
		if !strings.Contains(body, `"version":2`) {
			t.Errorf("watcher got %s", body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the watcher was not answered after the put")
	}

	if code, body := ccDo(t, c, "PUT", item, "", "application/yaml", "timeout: [\n"); code != 400 || !strings.Contains(body, "not YAML") {
		t.Errorf("invalid YAML: %d %s", code, body)
	}
	if code, body := ccDo(t, c, "POST", item+"/gray", "", "application/json",
		`{"content":"timeout: 5s\n","match":{"labels":{"zone":"eu-1"}}}`); code != 200 {
		t.Fatalf("gray: %d %s", code, body)
	}
	if _, body := ccDo(t, c, "GET", item+"?instance=pod-a&label.zone=eu-1", "", "", ""); !strings.Contains(body, `"gray":true`) {
		t.Errorf("cohort: %s", body)
	}
	if _, body := ccDo(t, c, "GET", item+"?instance=pod-b&label.zone=us-1", "", "", ""); !strings.Contains(body, `"content":"timeout: 3s\n"`) {
		t.Errorf("outside the cohort: %s", body)
	}
	_, history := ccDo(t, c, "GET", item+"/history", "", "", "")

	// kill -9 right after the acknowledgements: nothing is lost.
	s.kill9(t)
	s = startServer(t, dir)
	item = s.httpURL + "/api/v1/config/shop/payment/settings"
	if _, after := ccDo(t, c, "GET", item+"/history", "", "", ""); after != history {
		t.Fatalf("history after kill -9:\n%s\nwant\n%s", after, history)
	}
	if code, body := ccDo(t, c, "POST", item+"/gray/promote", "", "", ""); code != 200 || !strings.Contains(body, `"version":4`) {
		t.Fatalf("promote after restart: %d %s", code, body)
	}
	if code, body := ccDo(t, c, "GET", s.httpURL+"/api/v1/changes?start=0", "", "", ""); code != 200 ||
		strings.Count(body, `"kind":"config"`) != 4 || !strings.Contains(body, `"action":"promote"`) {
		t.Errorf("changes: %d %s", code, body)
	}

	// A SIGTERM answers a pending long poll at once rather than holding
	// the listeners' drain.
	_, cur := ccDo(t, c, "GET", item+"?instance=pod-b", "", "", "")
	if err := json.Unmarshal([]byte(cur), &got); err != nil {
		t.Fatal(err)
	}
	polled := make(chan int, 1)
	go func() {
		code, _ := ccDo(t, c, "GET", item+"?instance=pod-b&md5="+got.Data.MD5+"&wait=60s", "", "", "")
		polled <- code
	}()
	s.waitWatches(t, 1)
	start := time.Now()
	s.stop(t)
	select {
	case code := <-polled:
		if code != http.StatusNotModified {
			t.Errorf("long poll at shutdown: %d", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the long poll was not answered at shutdown")
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("shutdown took %s with a long poll pending", d)
	}
}

// TestConfigCentreAuth checks the configuration centre's roles with
// authentication on: writes need config (or admin), reads any role.
func TestConfigCentreAuth(t *testing.T) {
	a := startAuthServer(t)
	item := a.httpsURL + "/api/v1/config/shop/payment/flag"
	for _, step := range []struct {
		method, cred, body string
		want               int
	}{
		{"PUT", "", "on", http.StatusUnauthorized},
		{"PUT", "collector", "on", http.StatusForbidden},
		{"PUT", "reader", "on", http.StatusForbidden},
		{"PUT", "releaser", "on", http.StatusOK},
		{"PUT", "operator", "off", http.StatusOK},
		{"GET", "", "", http.StatusUnauthorized},
		{"GET", "collector", "", http.StatusOK},
		{"GET", "dashboards", "", http.StatusOK},
		{"GET", "releaser", "", http.StatusOK},
	} {
		var authz string
		if step.cred != "" {
			authz = a.cred(step.cred).header
		}
		code, body := ccDo(t, a.client, step.method, item, authz, "text/plain", step.body)
		if code != step.want {
			t.Errorf("%s as %q: %d %s, want %d", step.method, step.cred, code, body, step.want)
		}
	}
	// The author defaults to the credential: the operator's put, the
	// releaser token's; each is recorded as the principal too.
	code, body := ccDo(t, a.client, "GET", item+"/history", a.cred("reader").header, "", "")
	if code != 200 || !strings.Contains(body, `"author":"operator"`) || !strings.Contains(body, `"principal":"token:releaser"`) {
		t.Errorf("history: %d %s", code, body)
	}
}

// waitWatches waits until n long polls wait on s. A fixed pause before the
// write or the signal a long poll is meant to see was too short on a busy
// machine: the request had not reached the server yet, and a SIGTERM then
// refused its connection instead of answering it.
func (s *server) waitWatches(t *testing.T, n float64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%v long polls waiting", n), time.Minute, func() bool {
		return s.metricValue(t, "vigil_config_watches") >= n
	})
}

// TestConfigCentreCluster runs the configuration centre on a three-node
// cluster, on each consensus backend: a write through a follower reaches
// every node, a watcher on another node wakes, and a leader killed with
// kill -9 loses no acknowledged version.
func TestConfigCentreCluster(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			testConfigCentreCluster(t, newFaultCluster(t, backend, "", "route:\n  receiver: none\nreceivers:\n  - name: none\n"))
		})
	}
}

func testConfigCentreCluster(t *testing.T, c *faultCluster) {
	client := &http.Client{Timeout: time.Minute}
	leader, _ := c.settle(c.all(), 30*time.Second)
	f1, f2 := c.except(leader)[0], c.except(leader)[1]
	path := "/api/v1/config/shop/payment/settings"

	code, body := ccDo(t, client, "PUT", c.nodes[f1].httpURL+path+"?author=ann", "", "application/json", `{"timeout":"2s"}`)
	if code != 200 || !strings.Contains(body, `"version":1`) {
		t.Fatalf("put through a follower: %d %s", code, body)
	}
	// The follower answered once it applied the write: a read there sees it.
	if _, body := ccDo(t, client, "GET", c.nodes[f1].httpURL+path, "", "", ""); !strings.Contains(body, `"version":1`) {
		t.Errorf("read on the follower after its write: %s", body)
	}
	// A watcher on the other follower wakes when a write lands on the leader.
	woke := make(chan string, 1)
	go func() {
		_, body := ccDo(t, client, "GET", c.nodes[f2].httpURL+path+"?instance=pod-a&md5=none&wait=1s", "", "", "")
		woke <- body
	}()
	if body := <-woke; !strings.Contains(body, `"version":1`) {
		t.Fatalf("watch on the other follower: %s", body)
	}
	var got struct {
		Data struct {
			MD5 string `json:"md5"`
		} `json:"data"`
	}
	_, cur := ccDo(t, client, "GET", c.nodes[f2].httpURL+path, "", "", "")
	if err := json.Unmarshal([]byte(cur), &got); err != nil {
		t.Fatal(err)
	}
	go func() {
		_, body := ccDo(t, client, "GET", c.nodes[f2].httpURL+path+"?instance=pod-a&md5="+got.Data.MD5+"&wait=30s", "", "", "")
		woke <- body
	}()
	c.nodes[f2].waitWatches(t, 1)
	if code, body := ccDo(t, client, "PUT", c.nodes[leader].httpURL+path, "", "application/json", `{"timeout":"3s"}`); code != 200 {
		t.Fatalf("put on the leader: %d %s", code, body)
	}
	select {
	case body := <-woke:
		if !strings.Contains(body, `"version":2`) {
			t.Errorf("watcher on a follower: %s", body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the watcher on a follower was not answered")
	}

	// kill -9 the leader right after an acknowledged write.
	if code, body := ccDo(t, client, "POST", c.nodes[leader].httpURL+path+"/gray", "", "application/json",
		`{"content":"{\"timeout\":\"5s\"}","match":{"percent":50}}`); code != 200 {
		t.Fatalf("gray: %d %s", code, body)
	}
	c.nodes[leader].kill9(t)
	c.nodes[leader] = nil
	next, _ := c.settleAway(c.except(leader), leader, 30*time.Second)
	// The new leader may still be applying what the old one committed;
	// a read passes the read barrier first, so it is refused (503) until
	// then, and the first it answers holds the acknowledged gray.
	var history string
	waitFor(t, "a read the new leader answers", 10*time.Second, func() bool {
		code, history = ccDo(t, client, "GET", c.nodes[next].httpURL+path+"/history", "", "", "")
		return code != http.StatusServiceUnavailable
	}, func() string { return fmt.Sprintf("%d %s", code, history) })
	if code != 200 || !strings.Contains(history, `"version":3`) || !strings.Contains(history, `"active_gray":true`) {
		t.Fatalf("history on the new leader: %d %s", code, history)
	}
	if code, body := ccDo(t, client, "POST", c.nodes[next].httpURL+path+"/gray/promote", "", "", ""); code != 200 || !strings.Contains(body, `"version":4`) {
		t.Fatalf("promote on the new leader: %d %s", code, body)
	}
	for _, i := range c.except(leader) {
		waitFor(t, "every live node to serve version 4", 10*time.Second, func() bool {
			_, body := ccDo(t, client, "GET", c.nodes[i].httpURL+path+"?instance=pod-z", "", "", "")
			return strings.Contains(body, `"version":4`)
		})
	}
}

// TestConfigCentreClusterAuth: with authentication on, a follower serves
// a configuration read after asking the leader for the read index with
// the reader's own credential, whatever its role: a service's ingest
// token reads its configuration on any node, and the write made through
// another follower is in the first answer.
func TestConfigCentreClusterAuth(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("ops-pass"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	token := sha256.Sum256([]byte("collector-token"))
	webYML := fmt.Sprintf(`basic_auth_users:
  ops: %q
vigil_roles:
  ops: [read, config]
bearer_tokens:
  - name: collector
    sha256: %s
    roles: [ingest]
`, hash, hex.EncodeToString(token[:]))
	ops := "Basic " + base64.StdEncoding.EncodeToString([]byte("ops:ops-pass"))
	c := newFaultClusterWith(t, config.ClusterRaft, "", "route:\n  receiver: none\nreceivers:\n  - name: none\n", faultClusterExtra{
		files: map[string]string{"web.yml": webYML}, yaml: "web_config_file: web.yml\n", authHeader: ops,
	})
	client := &http.Client{Timeout: time.Minute}
	leader, _ := c.settle(c.all(), 30*time.Second)
	f1, f2 := c.except(leader)[0], c.except(leader)[1]
	path := "/api/v1/config/shop/payment/settings"
	if code, body := ccDo(t, client, "PUT", c.nodes[f1].httpURL+path, ops, "application/json", `{"timeout":"2s"}`); code != 200 {
		t.Fatalf("put through a follower: %d %s", code, body)
	}
	for _, cred := range []string{ops, "Bearer collector-token"} {
		code, body := ccDo(t, client, "GET", c.nodes[f2].httpURL+path+"?instance=pod-a", cred, "", "")
		if code != 200 || !strings.Contains(body, `"version":1`) {
			t.Errorf("read on the other follower as %.6s: %d %s", cred, code, body)
		}
	}
	if code, body := ccDo(t, client, "GET", c.nodes[f2].httpURL+path, "", "", ""); code != http.StatusUnauthorized {
		t.Errorf("read without credentials: %d %s", code, body)
	}
}

// TestConfigGuardAbortsGray runs the SLO guard in a real server: a gray
// naming an unknown SLO or bad PromQL is refused, and a gray guarded by
// an SLO whose errors burn its budget (half of all events fail) is
// aborted by vigil-guard within a few evaluations, with the change event,
// the metric and the ConfigGrayAborted alert in the Alertmanager.
func TestConfigGuardAbortsGray(t *testing.T) {
	cfg := writeConfig(t, `global:
  evaluation_interval: 1s
slos:
  - version: prometheus/v1
    service: shop
    slos:
      - name: checkout-availability
        objective: 99
        sli:
          raw:
            error_ratio_query: max_over_time(vector(0.5)[{{.window}}:1m])
        alerting:
          name: CheckoutBurn
`)
	s := startServer(t, t.TempDir(), "--config", cfg)
	c := &http.Client{Timeout: time.Minute}
	item := s.httpURL + "/api/v1/config/shop/payment/settings"
	if code, body := ccDo(t, c, "PUT", item, "", "application/yaml", "timeout: 2s\n"); code != 200 {
		t.Fatalf("put: %d %s", code, body)
	}
	for _, tc := range []struct{ guard, reason string }{
		{`{"slo": "nope"}`, `no SLO \"nope\" in slos: (known: shop/checkout-availability)`},
		{`{"promql": "rate(x[5m]"}`, `guard: promql:`},
	} {
		code, body := ccDo(t, c, "POST", item+"/gray", "", "application/json", `{"content": "timeout: 5s\n", "match": {"percent": 10}, "guard": `+tc.guard+`}`)
		if code != http.StatusBadRequest || !strings.Contains(body, tc.reason) {
			t.Errorf("gray guarded by %s: %d %s, want 400 with %q", tc.guard, code, body, tc.reason)
		}
	}
	code, body := ccDo(t, c, "POST", item+"/gray?author=bob", "", "application/json",
		`{"content": "timeout: 5s\n", "match": {"percent": 10}, "guard": {"slo": "checkout-availability"}}`)
	if code != 200 {
		t.Fatalf("gray: %d %s", code, body)
	}

	var changes struct {
		Data []struct{ Action, Author, Message string }
	}
	waitFor(t, "the gray aborted by vigil-guard", time.Minute, func() bool {
		if s.getJSON(t, "/api/v1/changes", &changes) != http.StatusOK || len(changes.Data) == 0 {
			return false
		}
		last := changes.Data[len(changes.Data)-1]
		return last.Action == "abort" && last.Author == "vigil-guard"
	})
	if msg := changes.Data[len(changes.Data)-1].Message; !strings.Contains(msg, "page (fast burn) condition of SLO shop/checkout-availability holds, value 0.5") {
		t.Errorf("abort reason %q", msg)
	}
	code, body = ccDo(t, c, "GET", item+"?instance=pod-a", "", "", "")
	if code != 200 || !strings.Contains(body, `"gray":false`) || !strings.Contains(body, `"version":1`) {
		t.Errorf("after the abort: %d %s, want the formal version 1", code, body)
	}
	if v := s.metricValue(t, `vigil_config_guard_aborts_total{result="ok"}`); v != 1 {
		t.Errorf("vigil_config_guard_aborts_total{result=\"ok\"} = %v, want 1", v)
	}
	var alerts []struct{ Labels map[string]string }
	waitFor(t, "ConfigGrayAborted in the Alertmanager", 30*time.Second, func() bool {
		if s.getJSON(t, "/api/v2/alerts", &alerts) != http.StatusOK {
			return false
		}
		for _, a := range alerts {
			if a.Labels["alertname"] == "ConfigGrayAborted" {
				if a.Labels["namespace"] != "shop" || a.Labels["group"] != "payment" || a.Labels["key"] != "settings" || a.Labels["version"] != "2" {
					t.Errorf("alert labels %v", a.Labels)
				}
				return true
			}
		}
		return false
	})
}

// TestConfigGuardCluster: in a three-node cluster only the leader
// evaluates the grays' guards, and its abort reaches every node once.
func TestConfigGuardCluster(t *testing.T) {
	c := newConfigCluster(t, alertRules("Steady"), "route:\n  receiver: none\nreceivers:\n  - name: none\n")
	client := &http.Client{Timeout: time.Minute}
	leader, _ := c.settle(c.all(), 30*time.Second)
	follower := c.except(leader)[0]
	path := "/api/v1/config/shop/payment/settings"
	if code, body := ccDo(t, client, "PUT", c.nodes[follower].httpURL+path, "", "application/json", `{"timeout":"2s"}`); code != 200 {
		t.Fatalf("put: %d %s", code, body)
	}
	// Always breached: the first evaluation on the leader aborts it.
	if code, body := ccDo(t, client, "POST", c.nodes[follower].httpURL+path+"/gray", "", "application/json",
		`{"content":"{\"timeout\":\"5s\"}","match":{"percent":50},"guard":{"promql":"vector(1)"}}`); code != 200 {
		t.Fatalf("gray through a follower: %d %s", code, body)
	}
	for _, i := range c.all() {
		var changes struct {
			Data []struct{ Action, Author string }
		}
		waitFor(t, "the guard's abort on every node", 30*time.Second, func() bool {
			return c.nodes[i].getJSON(t, "/api/v1/changes", &changes) == http.StatusOK &&
				slices.ContainsFunc(changes.Data, func(ch struct{ Action, Author string }) bool { return ch.Action == "abort" })
		})
		n := 0
		for _, ch := range changes.Data {
			if ch.Action == "abort" {
				n++
				if ch.Author != "vigil-guard" {
					t.Errorf("node %d: abort by %q", i, ch.Author)
				}
			}
		}
		if n != 1 {
			t.Errorf("node %d: %d aborts, want 1", i, n)
		}
	}
	for _, i := range c.all() {
		want := 0.0
		if i == leader {
			want = 1
		}
		if got := c.nodes[i].metricValue(t, `vigil_config_guard_evaluations_total{result="breach"}`); got != want {
			t.Errorf("node %d (leader %d): %v breaches evaluated, want %v", i, leader, got, want)
		}
	}
}
