package alerting

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/silence"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-observability/vigil/internal/consensus"
	"github.com/vigil-observability/vigil/internal/consensus/consensustest"
)

// getSilences lists the silences n serves: their ids, the status, and the
// Retry-After header.
func (n *replNode) getSilences(t *testing.T) ([]string, int, string) {
	t.Helper()
	resp, err := http.Get(n.api.URL + "/api/v2/silences")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, resp.StatusCode, resp.Header.Get("Retry-After")
	}
	var sils []struct{ ID string }
	if err := json.Unmarshal(b, &sils); err != nil {
		t.Fatalf("GET /api/v2/silences: %s: %v", b, err)
	}
	var ids []string
	for _, s := range sils {
		ids = append(ids, s.ID)
	}
	return ids, resp.StatusCode, ""
}

// On embedded Raft, a silence acknowledged by the leader is in the very
// next read on each follower, with no wait between; a write forwarded by
// one follower is in the next read on the other.
func TestRaftSilenceReadsAreLinearizableOnEveryNode(t *testing.T) {
	c := newRaftCluster(t)
	l := c.waitLeader()
	var want []string
	for round := range 5 {
		from := (l + round) % 3
		want = append(want, c.post(from, silenceBody("alertname", fmt.Sprintf("Round%d", round))))
		for i, n := range c.nodes {
			ids, code, _ := n.getSilences(t)
			if code != http.StatusOK {
				t.Fatalf("round %d: GET on n%d: status %d", round, i+1, code)
			}
			for _, id := range want {
				if !slices.Contains(ids, id) {
					t.Fatalf("round %d: n%d's read right after the write on n%d lacks %s", round, i+1, from+1, id)
				}
			}
		}
	}
}

// gatedFollower is a follower's log whose replication the test holds back:
// commands the leader applies reach its state only while the gate is open.
type gatedFollower struct {
	followerLog
	state *ReplicatedState

	mu      sync.Mutex
	open    bool
	pending []consensus.Applied
	applied uint64
	moved   chan struct{}
	waits   []uint64 // WaitApplied's indexes
}

func newGatedFollower(t *testing.T, leader *consensustest.Memory, state *ReplicatedState) *gatedFollower {
	g := &gatedFollower{state: state, open: true, moved: make(chan struct{})}
	ch, cancel := leader.Subscribe(64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for a := range ch {
			g.mu.Lock()
			g.pending = append(g.pending, a)
			g.flushLocked(t)
			g.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return g
}

func (g *gatedFollower) setOpen(t *testing.T, open bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open = open
	g.flushLocked(t)
}

func (g *gatedFollower) flushLocked(t *testing.T) {
	if !g.open || len(g.pending) == 0 {
		return
	}
	for _, a := range g.pending {
		if _, err := g.state.Apply(a.Cmd); err != nil {
			t.Errorf("apply on the follower: %v", err)
		}
		g.applied = a.Index
	}
	g.pending = nil
	close(g.moved)
	g.moved = make(chan struct{})
}

func (g *gatedFollower) ReadIndex(context.Context) (uint64, error) {
	return 0, &consensus.NotLeaderError{LeaderID: "n1", LeaderAddress: "raft-n1"}
}

func (g *gatedFollower) WaitApplied(ctx context.Context, index uint64) error {
	g.mu.Lock()
	g.waits = append(g.waits, index)
	g.mu.Unlock()
	for {
		g.mu.Lock()
		applied, moved := g.applied, g.moved
		g.mu.Unlock()
		if applied >= index {
			return nil
		}
		select {
		case <-moved:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// A follower that has not applied what the leader acknowledged answers a
// read with 503 rather than its stale copy, as it does when no leader
// answers; once it catches up it serves the read.
func TestFollowerReadRefusesStaleState(t *testing.T) {
	state := newReplState(t)
	log := consensustest.NewMemory(state)
	leader := startReplNode(t, state, log, nil)

	fstate := newReplState(t)
	gate := newGatedFollower(t, log, fstate)
	fwd := &HTTPForwarder{APIURLs: map[string]string{"n1": leader.api.URL}}
	repl, err := NewReplicator(ReplicatorOptions{State: fstate, Log: gate, Forwarder: fwd, ReadTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	am, err := New(Options{
		ConfigFile:  writeConfig(t, dir, onceConfig, "http://127.0.0.1:1/"),
		ExternalURL: testExternalURL,
		DataDir:     filepath.Join(dir, "data"),
		Replication: repl,
		Registerer:  prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	follower := &replNode{state: fstate, repl: repl, am: am, api: httptest.NewServer(am.Handler())}
	t.Cleanup(func() { follower.api.Close(); am.Stop() })

	first := leader.postOK(t, silenceBody("alertname", "First"))
	if ids, code, _ := follower.getSilences(t); code != http.StatusOK || !slices.Contains(ids, first) {
		t.Fatalf("caught-up follower: status %d, silences %v, want %s", code, ids, first)
	}

	gate.setOpen(t, false)
	second := leader.postOK(t, silenceBody("alertname", "Second"))
	if ids, code, retry := follower.getSilences(t); code != http.StatusServiceUnavailable || retry == "" {
		t.Fatalf("lagging follower: status %d (Retry-After %q), silences %v; want 503 with Retry-After", code, retry, ids)
	}
	gate.setOpen(t, true)
	if ids, code, _ := follower.getSilences(t); code != http.StatusOK || !slices.Contains(ids, second) {
		t.Fatalf("follower after catching up: status %d, silences %v, want %s", code, ids, second)
	}

	// A write forwarded by the follower: the leader says where it is in
	// the log, and the follower waits for that position, not by polling.
	g := gate
	g.mu.Lock()
	g.waits = nil
	g.mu.Unlock()
	third := follower.postOK(t, silenceBody("alertname", "Third"))
	if _, err := fstate.Silences().QueryOne(context.Background(), silence.QIDs(third)); err != nil {
		t.Fatalf("the follower answered a forwarded write before applying it: %v", err)
	}
	g.mu.Lock()
	waits := slices.Clone(g.waits)
	g.mu.Unlock()
	if want := log.AppliedIndex(); len(waits) != 1 || waits[0] != want {
		t.Errorf("forwarded write waited for positions %v, want [%d]", waits, want)
	}

	// The leader unreachable: no read index, no answer from the copy.
	leader.api.Close()
	if ids, code, retry := follower.getSilences(t); code != http.StatusServiceUnavailable || retry == "" {
		t.Fatalf("follower without a leader: status %d (Retry-After %q), silences %v; want 503 with Retry-After", code, retry, ids)
	}
}

// A deposed leader confirms its leadership before a read, so it does not
// serve one from its copy either.
func TestDeposedLeaderRefusesReads(t *testing.T) {
	state := newReplState(t)
	log := consensustest.NewMemory(state)
	n := startReplNode(t, state, log, nil)
	n.postOK(t, silenceBody("alertname", "DiskFull"))
	log.Depose()
	if _, code, _ := n.getSilences(t); code != http.StatusServiceUnavailable {
		t.Fatalf("deposed leader without a forwarder: status %d, want 503", code)
	}
	log.Elect()
	if ids, code, _ := n.getSilences(t); code != http.StatusOK || len(ids) != 1 {
		t.Fatalf("re-elected: status %d, silences %v", code, ids)
	}
}

func (n *replNode) postOK(t *testing.T, body string) string {
	t.Helper()
	code, id := n.post(t, body)
	if code != http.StatusOK {
		t.Fatalf("POST: status %d", code)
	}
	return id
}
