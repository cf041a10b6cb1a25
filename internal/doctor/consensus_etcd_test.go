package doctor

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/config"

	"github.com/vigil-observability/vigil/internal/ingest/scrape"
	"github.com/vigil-observability/vigil/internal/query/querylimit"
	"github.com/vigil-observability/vigil/internal/storage/storagetest"
	"github.com/vigil-observability/vigil/internal/testport"
)

// etcdMember is one etcd process a test started.
type etcdMember struct {
	name    string
	metrics string // host:port of its metrics listener
	cmd     *exec.Cmd
	log     *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startEtcd starts a 3-member etcd cluster on loopback with elections
// ten times faster than etcd's defaults, so a lost leader is replaced
// within a second.
func startEtcd(t *testing.T, bin string) []*etcdMember {
	t.Helper()
	ports := testport.Addrs(t, 9)
	var members []*etcdMember
	var initial []string
	for i := range 3 {
		initial = append(initial, fmt.Sprintf("m%d=http://%s", i+1, ports[3*i+1]))
	}
	for i := range 3 {
		client, peer, metrics := ports[3*i], ports[3*i+1], ports[3*i+2]
		m := &etcdMember{name: fmt.Sprintf("m%d", i+1), metrics: metrics, log: &lockedBuffer{}}
		m.cmd = exec.Command(bin,
			"--name", m.name, "--data-dir", filepath.Join(t.TempDir(), m.name),
			"--listen-client-urls", "http://"+client, "--advertise-client-urls", "http://"+client,
			"--listen-peer-urls", "http://"+peer, "--initial-advertise-peer-urls", "http://"+peer,
			"--listen-metrics-urls", "http://"+metrics,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", "doctor-test",
			"--heartbeat-interval", "20", "--election-timeout", "200")
		m.cmd.Stdout, m.cmd.Stderr = m.log, m.log
		if err := m.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = m.cmd.Process.Kill()
			_ = m.cmd.Wait()
			if t.Failed() {
				t.Logf("etcd %s log:\n%s", m.name, lastLines(m.log.String(), 20))
			}
		})
		members = append(members, m)
	}
	return members
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// gauge reads one unlabelled gauge from a member's metrics listener.
func (m *etcdMember) gauge(name string) (float64, error) {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + m.metrics + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("%s serves no %s", m.metrics, name)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, deadline time.Time, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestConsensusCheckRealEtcd runs the check on what vigil's scraper stores
// from a real 3-member etcd: nothing while it is healthy; after its leader
// is killed, the leader change and the dead member.
func TestConsensusCheckRealEtcd(t *testing.T) {
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("etcd is not installed (Debian package etcd-server)")
	}
	deadline := time.Now().Add(50 * time.Second)
	members := startEtcd(t, bin)
	// Scraping starts once the first leader is elected, so that election
	// is not counted as a change.
	waitFor(t, deadline, "a leader on every member", func() bool {
		for _, m := range members {
			if v, err := m.gauge("etcd_server_has_leader"); err != nil || v != 1 {
				return false
			}
		}
		return true
	})

	db := storagetest.OpenTSDB(t, storagetest.TSDBOptions{})
	var targets []string
	for _, m := range members {
		targets = append(targets, m.metrics)
	}
	cfg, err := config.Load("global: {scrape_interval: 250ms, scrape_timeout: 200ms}\nscrape_configs:\n- job_name: etcd\n  static_configs:\n  - targets: ["+strings.Join(targets, ", ")+"]\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	sm, err := scrape.New(scrape.Options{Appendable: db, DiscoveryUpdateInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := sm.ApplyConfig(cfg); err != nil {
		t.Fatal(err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- sm.Run() }()
	t.Cleanup(func() {
		sm.Stop()
		if err := <-runErr; err != nil {
			t.Errorf("scrape manager: %v", err)
		}
	})

	check := ConsensusCheck{
		Metrics: db, Engine: querylimit.NewEngine(querylimit.Options{}),
		// A test-sized window in which one change counts as flapping; a
		// loopback etcd on a shared test machine fsyncs as slowly as the
		// machine's disk does, which is not what is tested here.
		Window: time.Minute, LeaderChanges: 1, SlowSync: time.Second,
	}
	scraped := func(want int) func() bool {
		return func() bool {
			got, err := sloInstant(t.Context(), check.Engine, db, `count(count_over_time(etcd_server_has_leader[1m]) >= 3)`, time.Now())
			return err == nil && len(got) == 1 && int(got[0].F) == want
		}
	}
	waitFor(t, deadline, "three scrapes of every member", scraped(3))
	got, err := check.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	expectExactly(t, got)

	var leader *etcdMember
	for _, m := range members {
		if v, err := m.gauge("etcd_server_is_leader"); err == nil && v == 1 {
			leader = m
		}
	}
	if leader == nil {
		t.Fatal("no member says it is the leader")
	}
	if err := leader.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var survivors []*etcdMember
	for _, m := range members {
		if m != leader {
			survivors = append(survivors, m)
		}
	}
	waitFor(t, deadline, "a new leader", func() bool {
		for _, m := range survivors {
			if v, err := m.gauge("etcd_server_is_leader"); err == nil && v == 1 {
				return true
			}
		}
		return false
	})
	t.Logf("new leader elected %s after killing %s", time.Since(start).Round(time.Millisecond), leader.name)

	// The finding is complete once the scraper stored the dead member's
	// failed scrape and the survivors' counted change.
	var f Finding
	waitFor(t, deadline, "the finding of the leader change and the dead member", func() bool {
		got, err := check.Run(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 {
			return false
		}
		f = got[0]
		return f.Evidence.Values["leader_changes"] >= 1 && f.Evidence.Values["members_down"] == 1
	})
	got, err = check.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	f, _ = expectExactly(t, got, "consensus_unhealthy etcd cluster etcd")
	t.Logf("%s: %s", f.Severity, f.Evidence.Summary)
	if f.Severity != Warning || !strings.Contains(f.Evidence.Summary, leader.metrics+" is down (up 0) of 3 members") ||
		!strings.Contains(f.Evidence.Summary, "leader change") {
		t.Errorf("finding %+v\nwant a warning naming %s down and the leader change", f, leader.metrics)
	}
}
