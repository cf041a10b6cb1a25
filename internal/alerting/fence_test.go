package alerting

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-observability/vigil/internal/consensus"
	"github.com/vigil-observability/vigil/internal/consensus/consensustest"
)

// tokens is a Fencer answering from a script, one answer per call.
type tokens struct {
	mu  sync.Mutex
	out []uint64 // 0: not the leader
}

func (s *tokens) Fence(context.Context) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tok := s.out[0]
	s.out = s.out[1:]
	if tok == 0 {
		return 0, &consensus.NotLeaderError{LeaderID: "n2"}
	}
	return tok, nil
}

func TestLeaderFenceNeverGoesBack(t *testing.T) {
	f := NewLeaderFence(&tokens{out: []uint64{2, 2, 0, 5, 3, 5, 6}})
	want := []struct {
		tok uint64
		err error
	}{
		{2, nil}, {2, nil}, {0, consensus.ErrNotLeader}, {5, nil},
		{0, ErrStaleToken}, // 3 after 5: another node led in between
		{5, nil}, {6, nil},
	}
	for i, w := range want {
		tok, err := f.Token(context.Background())
		if tok != w.tok || !errors.Is(err, w.err) || (w.err == nil) != (err == nil) {
			t.Errorf("call %d: (%d, %v), want (%d, %v)", i, tok, err, w.tok, w.err)
		}
	}
}

// staleLeader is a node whose view of the leader is stale while stale is
// set: it still believes it leads.
type staleLeader struct {
	*consensustest.Memory
	stale *atomic.Bool
}

func (s staleLeader) Leader() consensus.LeaderInfo {
	li := s.Memory.Leader()
	if s.stale.Load() {
		li.Self = true
	}
	return li
}

// termReceiver records the LeaderTermHeader of each request.
type termReceiver struct {
	srv   *httptest.Server
	mu    sync.Mutex
	terms []string
}

func newTermReceiver(t *testing.T) *termReceiver {
	r := &termReceiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		r.mu.Lock()
		r.terms = append(r.terms, req.Header.Get(LeaderTermHeader))
		r.mu.Unlock()
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *termReceiver) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.terms...)
}

func TestFencedTransport(t *testing.T) {
	rcv := newTermReceiver(t)
	leader := consensustest.NewMemory(newReplState(t))
	client := &http.Client{Transport: &FencedTransport{Next: http.DefaultTransport, Fence: NewLeaderFence(leader)}}
	post := func() error {
		resp, err := client.Post(rcv.srv.URL, "application/json", nil)
		if err == nil {
			_ = resp.Body.Close()
		}
		return err
	}

	steps := []struct {
		name      string
		change    func()
		wantErr   error
		wantTerms []string
	}{
		{"leader in term 1", func() {}, nil, []string{"1"}},
		{"deposed: nothing sent", leader.Depose, consensus.ErrNotLeader, []string{"1"}},
		{"elected again, in term 3", leader.Elect, nil, []string{"1", "3"}},
	}
	for _, s := range steps {
		s.change()
		err := post()
		if !errors.Is(err, s.wantErr) || (s.wantErr == nil) != (err == nil) {
			t.Errorf("%s: %v, want %v", s.name, err, s.wantErr)
		}
		if got := rcv.got(); !equalStrings(got, s.wantTerms) {
			t.Errorf("%s: receiver saw terms %q, want %q", s.name, got, s.wantTerms)
		}
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// fastConfig flushes groups often, so a notification refused while
// deposed is tried again soon after.
const fastConfig = `
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 10ms
  group_interval: 100ms
  repeat_interval: 1h
receivers:
- name: hook
  webhook_configs:
  - url: {{URL}}
`

func TestNotificationsAreFencedByTerm(t *testing.T) {
	rcv := newTermReceiver(t)
	state := newReplState(t)
	leader := consensustest.NewMemory(state)
	repl, err := NewReplicator(ReplicatorOptions{State: state, Log: leader})
	if err != nil {
		t.Fatal(err)
	}
	applied, cancel := leader.Subscribe(64)
	defer cancel()
	var stale atomic.Bool
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	am, err := New(Options{
		ConfigFile:  writeConfig(t, dir, fastConfig, rcv.srv.URL),
		ExternalURL: testExternalURL,
		DataDir:     filepath.Join(dir, "data"),
		Fencer:      staleLeader{leader, &stale},
		Replication: repl,
		Registerer:  reg,
		Logger:      slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = am.Run(context.Background()) }()
	defer func() { am.Stop(); <-done }()

	am.Send(firing(map[string]string{"alertname": "CPUHigh"}, nil))
	waitFor(t, "the leader's notification", func() bool { return len(rcv.got()) == 1 })
	if got := rcv.got(); got[0] != "1" {
		t.Fatalf("first notification carries term %q, want 1", got[0])
	}
	// The running Alertmanager proposes what it logged for the group.
	select {
	case a := <-applied:
		if len(a.Cmd) == 0 || a.Cmd[0] != cmdNflog {
			t.Fatalf("applied %q, want a notification log command", a.Cmd)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the notification was not logged to the cluster")
	}

	failed := func() float64 {
		return metricValue(t, reg, "alertmanager_notifications_failed_total", map[string]string{"integration": "webhook"})
	}
	skipped := func() float64 { return metricValue(t, reg, "vigil_alertmanager_flushes_left_to_leader_total", nil) }

	// Deposed without knowing it (its view of the leader is stale): the
	// gate lets the group through, the fence refuses it, and the failure
	// is counted.
	leader.Depose()
	stale.Store(true)
	am.Send(firing(map[string]string{"alertname": "DiskFull"}, nil))
	waitFor(t, "a refused notification", func() bool { return failed() > 0 })
	if got := rcv.got(); len(got) != 1 {
		t.Fatalf("a deposed node sent: receiver saw %q", got)
	}
	// Once it knows another node leads, its groups are left to the leader
	// without an attempt: no more failures, nothing sent.
	stale.Store(false)
	failures := failed()
	am.Send(firing(map[string]string{"alertname": "MemoryLow"}, nil))
	waitFor(t, "a flush left to the leader", func() bool { return skipped() > 0 })
	time.Sleep(300 * time.Millisecond) // a few more flushes at fastConfig's group_interval
	if f := failed(); f != failures {
		t.Errorf("a follower that knows it does not lead tried to notify: failures went from %v to %v", failures, f)
	}
	if got := rcv.got(); len(got) != 1 {
		t.Fatalf("a deposed node sent: receiver saw %q", got)
	}

	leader.Elect() // term 3
	waitFor(t, "the notification after re-election", func() bool { return len(rcv.got()) >= 2 })
	got := rcv.got()
	if got[1] != "3" {
		t.Errorf("notification after re-election carries term %q, want 3", got[1])
	}
	prev := uint64(0)
	for _, s := range got {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil || n < prev {
			t.Fatalf("terms %q: missing or going back", got)
		}
		prev = n
	}
}
