package alerting

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/nflog"
	"github.com/prometheus/alertmanager/nflog/nflogpb"
	"github.com/prometheus/alertmanager/silence"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/vigil-observability/vigil/internal/consensus"
	"github.com/vigil-observability/vigil/internal/consensus/consensustest"
)

// replNode is one node's replicated alerting state, its Alertmanager and
// the Alertmanager API served over HTTP.
type replNode struct {
	state *ReplicatedState
	repl  *Replicator
	am    *Alertmanager
	api   *httptest.Server
}

func newReplState(t *testing.T) *ReplicatedState {
	t.Helper()
	s, err := NewReplicatedState(ReplicatedStateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startReplNode builds an Alertmanager on state, replicated through log.
// It is not Run: the tests read silences and mutes, not notifications.
func startReplNode(t *testing.T, state *ReplicatedState, log Proposer, fwd Forwarder) *replNode {
	t.Helper()
	repl, err := NewReplicator(ReplicatorOptions{State: state, Log: log, Forwarder: fwd})
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
	n := &replNode{state: state, repl: repl, am: am}
	mux := http.NewServeMux()
	mux.Handle("/api/v2/", am.Handler())
	mux.Handle(InternalSilencesPath, repl.InternalHandler())
	mux.Handle(InternalReadIndexPath, repl.InternalReadIndexHandler())
	n.api = httptest.NewServer(mux)
	t.Cleanup(func() {
		n.api.Close()
		am.Stop()
	})
	return n
}

func silenceBody(name, value string) string {
	return fmt.Sprintf(`{"matchers":[{"name":%q,"value":%q,"isRegex":false,"isEqual":true}],
		"startsAt":%q,"endsAt":%q,"createdBy":"test","comment":"maintenance"}`,
		name, value, time.Now().Format(time.RFC3339), time.Now().Add(time.Hour).Format(time.RFC3339))
}

// post creates a silence through n's API and returns the status and the
// silence id (empty unless 200).
func (n *replNode) post(t *testing.T, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(n.api.URL+"/api/v2/silences", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out struct {
		SilenceID string `json:"silenceID"`
	}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, &out); err != nil || out.SilenceID == "" {
			t.Fatalf("POST /api/v2/silences: %s (%v)", b, err)
		}
	}
	return resp.StatusCode, out.SilenceID
}

func (n *replNode) expire(t *testing.T, id string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, n.api.URL+"/api/v2/silence/"+id, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// mutes says whether n's Alertmanager silences an alert with these labels.
func (n *replNode) mutes(lset model.LabelSet) bool {
	return n.am.silencer.Mutes(context.Background(), lset)
}

var diskFull = model.LabelSet{"alertname": "DiskFull", "instance": "db1"}

// follow applies every command the leader's log applies to another
// node's state, as replication would, until the test ends.
func follow(t *testing.T, log *consensustest.Memory, to *ReplicatedState) {
	t.Helper()
	applied, cancel := log.Subscribe(64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for a := range applied {
			if a.Cmd != nil {
				if _, err := to.Apply(a.Cmd); err != nil {
					t.Errorf("apply on the follower: %v", err)
				}
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

func TestReplicatedSilenceIsCommittedBeforeTheAnswer(t *testing.T) {
	state := newReplState(t)
	log := consensustest.NewMemory(state)
	leader := startReplNode(t, state, log, nil)
	other := newReplState(t)
	follow(t, log, other)
	applied, cancel := log.Subscribe(16)
	defer cancel()

	code, id := leader.post(t, silenceBody("alertname", "DiskFull"))
	if code != http.StatusOK {
		t.Fatalf("POST: status %d", code)
	}
	// Committed before the answer: the log has applied it by now.
	select {
	case a := <-applied:
		if len(a.Cmd) == 0 || a.Cmd[0] != cmdSilences {
			t.Fatalf("applied %q, want a silences command", a.Cmd)
		}
	default:
		t.Fatal("the API answered before the silence was committed")
	}
	if !leader.mutes(diskFull) {
		t.Error("the leader does not mute the silenced alert")
	}
	waitFor(t, "the silence on the other node", func() bool {
		_, err := other.Silences().QueryOne(context.Background(), silence.QIDs(id))
		return err == nil
	})

	if code := leader.expire(t, id); code != http.StatusOK {
		t.Fatalf("DELETE: status %d", code)
	}
	if leader.mutes(diskFull) {
		t.Error("the expired silence still mutes")
	}
	waitFor(t, "the expiry on the other node", func() bool {
		sil, err := other.Silences().QueryOne(context.Background(), silence.QIDs(id))
		return err == nil && !sil.EndsAt.AsTime().After(time.Now())
	})
}

func TestReplicatedSilenceWriteRefusals(t *testing.T) {
	state := newReplState(t)
	log := consensustest.NewMemory(state)
	n := startReplNode(t, state, log, nil)

	tests := []struct {
		name   string
		depose bool
		do     func() int
		want   int
	}{
		{"malformed body", false, func() int { c, _ := n.post(t, `{"matchers":`); return c }, http.StatusBadRequest},
		{"no matchers", false, func() int {
			c, _ := n.post(t, `{"matchers":[],"startsAt":"2030-01-01T00:00:00Z","endsAt":"2030-01-02T00:00:00Z","createdBy":"t","comment":"c"}`)
			return c
		}, http.StatusBadRequest},
		{"end before start", false, func() int {
			c, _ := n.post(t, `{"matchers":[{"name":"a","value":"b","isRegex":false}],"startsAt":"2030-01-02T00:00:00Z","endsAt":"2030-01-01T00:00:00Z","createdBy":"t","comment":"c"}`)
			return c
		}, http.StatusBadRequest},
		{"expire unknown silence", false, func() int { return n.expire(t, "7b4d6c25-7ed7-4b5a-a0f8-3a3e0f6f3c01") }, http.StatusNotFound},
		// Without a Forwarder a follower cannot take the write.
		{"not the leader", true, func() int { c, _ := n.post(t, silenceBody("alertname", "DiskFull")); return c }, http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.depose {
				log.Depose()
				defer log.Elect()
			}
			if got := tt.do(); got != tt.want {
				t.Errorf("status %d, want %d", got, tt.want)
			}
			if got, _ := state.Silences().CountState(context.Background(), silence.SilenceStateActive, silence.SilenceStatePending); got != 0 {
				t.Errorf("%d silences after a refused write, want 0", got)
			}
		})
	}
}

// followerLog is a follower's view of the log: every write names n1.
type followerLog struct{}

func (followerLog) Propose(context.Context, []byte) ([]byte, error) {
	return nil, &consensus.NotLeaderError{LeaderID: "n1", LeaderAddress: "raft-n1"}
}

func (followerLog) Barrier(context.Context) error {
	return &consensus.NotLeaderError{LeaderID: "n1", LeaderAddress: "raft-n1"}
}

func (followerLog) Fence(context.Context) (uint64, error) {
	return 0, &consensus.NotLeaderError{LeaderID: "n1", LeaderAddress: "raft-n1"}
}

func TestFollowerForwardsSilenceWritesToTheLeader(t *testing.T) {
	state := newReplState(t)
	log := consensustest.NewMemory(state)
	leader := startReplNode(t, state, log, nil)

	fstate := newReplState(t)
	follow(t, log, fstate)
	fwd := &HTTPForwarder{APIURLs: map[string]string{"n1": leader.api.URL}}
	follower := startReplNode(t, fstate, followerLog{}, fwd)

	code, id := follower.post(t, silenceBody("alertname", "DiskFull"))
	if code != http.StatusOK {
		t.Fatalf("POST on the follower: status %d", code)
	}
	// The follower answers only once it has applied the write itself.
	if !follower.mutes(diskFull) {
		t.Error("the follower does not mute right after its API answered")
	}
	if !leader.mutes(diskFull) {
		t.Error("the leader does not mute the forwarded silence")
	}
	if code := follower.expire(t, id); code != http.StatusOK {
		t.Fatalf("DELETE on the follower: status %d", code)
	}
	if follower.mutes(diskFull) || leader.mutes(diskFull) {
		t.Error("the expired silence still mutes")
	}

	// The leader's refusals reach the follower's client as the same status.
	if code, _ := follower.post(t, `{"matchers":[],"startsAt":"2030-01-01T00:00:00Z","endsAt":"2030-01-02T00:00:00Z","createdBy":"t","comment":"c"}`); code != http.StatusBadRequest {
		t.Errorf("invalid silence through the follower: status %d, want 400", code)
	}
	// A leader deposed meanwhile does not forward again: 503, retry later.
	log.Depose()
	if code, _ := follower.post(t, silenceBody("alertname", "CPUHigh")); code != http.StatusServiceUnavailable {
		t.Errorf("forwarded to a deposed leader: status %d, want 503", code)
	}
	// A leader whose API address is not known.
	fwd.APIURLs = nil
	_, err := follower.repl.Do(context.Background(), SilenceOp{ExpireID: id})
	if !errors.Is(err, ErrNoLeaderAPI) {
		t.Errorf("unknown leader API: %v, want ErrNoLeaderAPI", err)
	}
	// A leader that answers "retry later", or cannot be reached (it has
	// just died), is a retry for the client too, not a server error.
	busy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error":"leadership lost"}`))
	}))
	defer busy.Close()
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	for name, url := range map[string]string{"a leader answering 503": busy.URL, "an unreachable leader": gone.URL} {
		fwd.APIURLs = map[string]string{"n1": url}
		if code, _ := follower.post(t, silenceBody("alertname", "CPUHigh")); code != http.StatusServiceUnavailable {
			t.Errorf("%s: status %d through the follower, want 503", name, code)
		}
	}
}

func TestReplicatedStateSnapshotRestore(t *testing.T) {
	state := newReplState(t)
	log := consensustest.NewMemory(state)
	n := startReplNode(t, state, log, nil)
	if code, _ := n.post(t, silenceBody("alertname", "DiskFull")); code != http.StatusOK {
		t.Fatalf("POST: status %d", code)
	}
	recv := &nflogpb.Receiver{GroupName: "hook", Integration: "webhook"}
	if err := state.nflog.Log(recv, "{}:{alertname=\"CPUHigh\"}", []uint64{1}, nil, nil, 0); err != nil {
		t.Fatal(err)
	}
	// The stand-in's Restart goes through Snapshot and Restore on the same
	// state; a fresh state restored from the snapshot is the late joiner.
	if err := log.Restart(); err != nil {
		t.Fatal(err)
	}
	write, err := state.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var snap bytes.Buffer
	if err := write(&snap); err != nil {
		t.Fatal(err)
	}
	joiner := newReplState(t)
	if err := joiner.Restore(bytes.NewReader(snap.Bytes())); err != nil {
		t.Fatal(err)
	}
	if got, _ := joiner.Silences().CountState(context.Background(), silence.SilenceStateActive); got != 1 {
		t.Errorf("restored %d active silences, want 1", got)
	}
	if _, err := joiner.nflog.Query(nflogQuery(recv, "{}:{alertname=\"CPUHigh\"}")...); err != nil {
		t.Errorf("restored notification log: %v", err)
	}

	bad := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"another format", []byte("[\"a\",\"b\"]")},
		{"truncated", snap.Bytes()[:snap.Len()-1]},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if err := newReplState(t).Restore(bytes.NewReader(tt.in)); !errors.Is(err, ErrBadCommand) {
				t.Errorf("Restore: %v, want ErrBadCommand", err)
			}
		})
	}
}

func TestNflogEntriesAreProposedOnce(t *testing.T) {
	state := newReplState(t)
	log := consensustest.NewMemory(state)
	repl, err := NewReplicator(ReplicatorOptions{State: state, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	other := newReplState(t)
	otherRepl, err := NewReplicator(ReplicatorOptions{State: other, Log: followerLog{}})
	if err != nil {
		t.Fatal(err)
	}
	follow(t, log, other)
	applied, cancel := log.Subscribe(16)
	defer cancel()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); repl.Run(ctx) }()
	defer func() { stop(); <-done }()

	recv := &nflogpb.Receiver{GroupName: "hook", Integration: "webhook"}
	const gkey = "{}:{alertname=\"CPUHigh\"}"
	if err := state.nflog.Log(recv, gkey, []uint64{1}, nil, nil, 0); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-applied:
		if len(a.Cmd) == 0 || a.Cmd[0] != cmdNflog {
			t.Fatalf("applied %q, want a notification log command", a.Cmd)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the notification log entry was not proposed")
	}
	waitFor(t, "the entry on the other node", func() bool {
		_, err := other.nflog.Query(nflogQuery(recv, gkey)...)
		return err == nil
	})
	// Applying a committed entry is not a new entry: neither node queues
	// it for proposing again.
	if n := len(repl.nflogc) + len(otherRepl.nflogc); n != 0 {
		t.Errorf("%d applied entries queued to be proposed again, want 0", n)
	}
}

func nflogQuery(r *nflogpb.Receiver, gkey string) []nflog.QueryParam {
	return []nflog.QueryParam{nflog.QReceiver(r), nflog.QGroupKey(gkey)}
}

// waitFor polls cond until it holds or 5 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestReplicatedSilenceUpdates(t *testing.T) {
	state := newReplState(t)
	log := consensustest.NewMemory(state)
	leader := startReplNode(t, state, log, nil)
	other := newReplState(t)
	follow(t, log, other)

	_, id := leader.post(t, silenceBody("alertname", "DiskFull"))
	orig, err := state.Silences().QueryOne(context.Background(), silence.QIDs(id))
	if err != nil {
		t.Fatal(err)
	}
	// An active silence is updated in place only if its start stays.
	startsAt := orig.StartsAt.AsTime().Format(time.RFC3339Nano)
	body := func(value, comment string) string {
		return fmt.Sprintf(`{"id":%q,"matchers":[{"name":"alertname","value":%q,"isRegex":false,"isEqual":true}],
			"startsAt":%q,"endsAt":%q,"createdBy":"test","comment":%q}`,
			id, value, startsAt, time.Now().Add(2*time.Hour).Format(time.RFC3339), comment)
	}
	get := func(s *ReplicatedState, id string) (comment string, active bool) {
		sil, err := s.Silences().QueryOne(context.Background(), silence.QIDs(id))
		if err != nil {
			return "", false
		}
		return sil.Comment, sil.EndsAt.AsTime().After(time.Now())
	}

	// Same matchers: updated in place, same id, everywhere.
	code, got := leader.post(t, body("DiskFull", "longer"))
	if code != http.StatusOK || got != id {
		t.Fatalf("update: status %d, id %q, want 200 and %q", code, got, id)
	}
	waitFor(t, "the update on the other node", func() bool { c, _ := get(other, id); return c == "longer" })

	// Other matchers: Alertmanager expires the old silence and creates a
	// new one; both changes are one command, so no node sees one alone.
	code, replaced := leader.post(t, body("CPUHigh", "moved"))
	if code != http.StatusOK || replaced == id {
		t.Fatalf("replace: status %d, id %q, want 200 and a new id", code, replaced)
	}
	waitFor(t, "the replacement on the other node", func() bool {
		_, oldActive := get(other, id)
		c, newActive := get(other, replaced)
		return !oldActive && newActive && c == "moved"
	})
}

// Authorize puts credentials on the forwarded request, from the context of
// the write: the leader's internal endpoint is behind authentication.
func TestHTTPForwarderAuthorize(t *testing.T) {
	type callerKey struct{}
	got := make(chan string, 1)
	leader := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("Authorization")
		writeJSON(w, http.StatusOK, forwardedResult{ID: "s1", UpdatedAt: time.Now()})
	}))
	defer leader.Close()
	fwd := &HTTPForwarder{
		APIURLs: map[string]string{"n1": leader.URL},
		Authorize: func(ctx context.Context, req *http.Request) {
			if v, ok := ctx.Value(callerKey{}).(string); ok {
				req.Header.Set("Authorization", v)
			}
		},
	}
	ctx := context.WithValue(context.Background(), callerKey{}, "Bearer caller-token")
	res, err := fwd.Forward(ctx, &consensus.NotLeaderError{LeaderID: "n1"}, SilenceOp{ExpireID: "s1"})
	if err != nil || res.ID != "s1" {
		t.Fatalf("Forward = %+v, %v", res, err)
	}
	if h := <-got; h != "Bearer caller-token" {
		t.Errorf("leader got Authorization %q, want the caller's", h)
	}
}

// doubtfulLog fails chosen proposals after they were applied (a commit
// whose answer was lost) and counts the barriers asked for.
type doubtfulLog struct {
	*consensustest.Memory
	failNext atomic.Bool
	barriers atomic.Int32
}

func (l *doubtfulLog) Propose(ctx context.Context, cmd []byte) ([]byte, error) {
	res, err := l.Memory.Propose(ctx, cmd)
	if err == nil && l.failNext.Swap(false) {
		return nil, consensus.ErrLeadershipLost
	}
	return res, err
}

func (l *doubtfulLog) Barrier(ctx context.Context) error {
	l.barriers.Add(1)
	return l.Memory.Barrier(ctx)
}

// A write normally costs a fence, not a barrier; after a proposal whose
// outcome is in doubt, the next write waits for the log first.
func TestSilenceWriteBarrierOnlyAfterDoubt(t *testing.T) {
	state := newReplState(t)
	log := &doubtfulLog{Memory: consensustest.NewMemory(state)}
	n := startReplNode(t, state, log, nil)
	for range 3 {
		if code, _ := n.post(t, silenceBody("alertname", "DiskFull")); code != http.StatusOK {
			t.Fatalf("POST: status %d", code)
		}
	}
	if b := log.barriers.Load(); b != 0 {
		t.Errorf("%d barriers for three plain writes, want 0", b)
	}
	log.failNext.Store(true)
	if code, _ := n.post(t, silenceBody("alertname", "CPUHigh")); code != http.StatusServiceUnavailable {
		t.Fatalf("POST whose commit answer was lost: status %d, want 503", code)
	}
	if code, _ := n.post(t, silenceBody("alertname", "CPUHigh")); code != http.StatusOK {
		t.Fatalf("POST after it: status %d", code)
	}
	if b := log.barriers.Load(); b != 1 {
		t.Errorf("%d barriers after a write in doubt, want 1", b)
	}
}

// A failed silence write whose outcome is unknown, or that no leader
// could take, is a 503 the client retries; only a bad silence is its own
// fault.
func TestSilenceStatus(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{fmt.Errorf("%w: ends before it starts", ErrInvalidSilence), http.StatusBadRequest},
		{fmt.Errorf("expire: %w", silence.ErrNotFound), http.StatusNotFound},
		{&consensus.NotLeaderError{}, http.StatusServiceUnavailable},
		{fmt.Errorf("propose: %w", consensus.ErrLeadershipLost), http.StatusServiceUnavailable},
		{fmt.Errorf("propose: %w: etcd: leader changed", consensus.ErrUnavailable), http.StatusServiceUnavailable},
		{fmt.Errorf("%w: n2", ErrLeaderUnavailable), http.StatusServiceUnavailable},
		{errors.New("disk on fire"), http.StatusInternalServerError},
	} {
		if got := silenceStatus(tc.err); got != tc.want {
			t.Errorf("%v: %d, want %d", tc.err, got, tc.want)
		}
	}
}
