package clusterapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/vigil-observability/vigil/internal/consensus"
)

// fakeMembership records the changes asked of it and fails them with err.
type fakeMembership struct {
	members []consensus.Member
	err     error
	joined  []consensus.Peer
	removed []string
}

func (f *fakeMembership) Status(context.Context) (consensus.Status, error) {
	return consensus.Status{Leader: "n1", Term: 7, Members: f.members}, nil
}

func (f *fakeMembership) Join(_ context.Context, p consensus.Peer) error {
	if f.err != nil {
		return f.err
	}
	f.joined = append(f.joined, p)
	f.members = append(f.members, consensus.Member{ID: p.ID, Address: p.Address, State: consensus.StateUnknown, Voter: true})
	return nil
}

func (f *fakeMembership) Remove(_ context.Context, id string) error {
	if f.err != nil {
		return f.err
	}
	f.removed = append(f.removed, id)
	return nil
}

func threeMembers() []consensus.Member {
	return []consensus.Member{
		{ID: "n1", Address: "10.0.0.1:7946", State: consensus.StateLeader, Voter: true, Local: true},
		{ID: "n2", Address: "10.0.0.2:7946", State: consensus.StateFollower, Voter: true},
		{ID: "n3", Address: "10.0.0.3:7946", State: consensus.StateUnknown, Voter: true},
	}
}

func mux(o MembersOptions) *http.ServeMux {
	m := http.NewServeMux()
	m.Handle("POST "+MembersPath, JoinHandler(o))
	m.Handle("DELETE "+MembersPath+"/{id}", RemoveHandler(o))
	return m
}

func TestMembersHandlers(t *testing.T) {
	notLeader := &consensus.NotLeaderError{LeaderID: "n1", LeaderAddress: "10.0.0.1:7946"}
	for _, tc := range []struct {
		name       string
		single     bool
		follower   bool // the node answering is not the leader
		err        error
		method     string
		path, body string
		wantCode   int
		wantType   string
		wantError  string // in the error message
		wantJoined []consensus.Peer
		wantRemove []string
		wantData   string // in the raw answer
	}{
		{name: "join", method: "POST", path: MembersPath, body: `{"id":"n4","address":"10.0.0.4:7946"}`,
			wantCode: 200, wantJoined: []consensus.Peer{{ID: "n4", Address: "10.0.0.4:7946"}}, wantData: `"id":"n4"`},
		{name: "remove", method: "DELETE", path: MembersPath + "/n3", wantCode: 200, wantRemove: []string{"n3"}, wantData: `"leader":"n1"`},
		{name: "single node join", single: true, method: "POST", path: MembersPath, body: `{"id":"n4","address":"h:1"}`,
			wantCode: 404, wantType: "not_found", wantError: "single-node"},
		{name: "single node remove", single: true, method: "DELETE", path: MembersPath + "/n3", wantCode: 404, wantType: "not_found", wantError: "single-node"},
		{name: "not JSON", method: "POST", path: MembersPath, body: `id=n4`, wantCode: 400, wantType: "bad_data", wantError: "must be JSON"},
		{name: "unknown field", method: "POST", path: MembersPath, body: `{"id":"n4","addr":"h:1"}`, wantCode: 400, wantType: "bad_data"},
		{name: "no id", method: "POST", path: MembersPath, body: `{"address":"h:1"}`, wantCode: 400, wantType: "bad_data", wantError: "id is empty"},
		{name: "address without port", method: "POST", path: MembersPath, body: `{"id":"n4","address":"10.0.0.4"}`,
			wantCode: 400, wantType: "bad_data", wantError: "host:port"},
		{name: "remove a stranger", method: "DELETE", path: MembersPath + "/n9", wantCode: 404, wantType: "not_found", wantError: "n9 is not a member"},
		// A follower's view can lag a join: the leader decides who is a stranger.
		{name: "remove on a follower", err: notLeader, method: "DELETE", path: MembersPath + "/n9", follower: true,
			wantCode: 421, wantType: ErrorNotLeader, wantError: "send it to the leader, n1"},
		{name: "join on a follower", err: notLeader, method: "POST", path: MembersPath, body: `{"id":"n4","address":"h:1"}`,
			wantCode: 421, wantType: ErrorNotLeader, wantError: "the leader, n1 at http://10.0.0.1:7070",
			wantData: `"leader_api_url":"http://10.0.0.1:7070"`},
		{name: "remove during an election", err: &consensus.NotLeaderError{}, method: "DELETE", path: MembersPath + "/n3",
			wantCode: 421, wantType: ErrorNotLeader, wantError: "no leader is known"},
		{name: "etcd", err: fmt.Errorf("membership follows leases: %w", errors.ErrUnsupported), method: "POST", path: MembersPath,
			body: `{"id":"n4","address":"h:1"}`, wantCode: 501, wantType: ErrorUnsupported, wantError: "leases"},
		{name: "leadership lost", err: consensus.ErrLeadershipLost, method: "DELETE", path: MembersPath + "/n2",
			wantCode: 503, wantType: "unavailable", wantError: "remove n2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := &fakeMembership{members: threeMembers(), err: tc.err}
			if tc.follower {
				fake.members[0].Local, fake.members[1].Local = false, true
			}
			o := MembersOptions{Membership: fake, APIURLs: map[string]string{"n1": "http://10.0.0.1:7070"}}
			if tc.single {
				o.Membership = nil
			}
			rec := httptest.NewRecorder()
			mux(o).ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body)))
			if rec.Code != tc.wantCode {
				t.Fatalf("HTTP %d, want %d: %s", rec.Code, tc.wantCode, rec.Body)
			}
			var env struct{ Status, ErrorType, Error string }
			if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil {
				t.Fatalf("not JSON: %v: %s", err, rec.Body)
			}
			wantStatus := "success"
			if tc.wantType != "" {
				wantStatus = "error"
			}
			if env.Status != wantStatus || env.ErrorType != tc.wantType || !strings.Contains(env.Error, tc.wantError) {
				t.Errorf("answer %+v, want status %s, type %q, error containing %q", env, wantStatus, tc.wantType, tc.wantError)
			}
			if !strings.Contains(rec.Body.String(), tc.wantData) {
				t.Errorf("answer %s lacks %s", rec.Body, tc.wantData)
			}
			if fmt.Sprint(fake.joined) != fmt.Sprint(tc.wantJoined) || fmt.Sprint(fake.removed) != fmt.Sprint(tc.wantRemove) {
				t.Errorf("joined %v removed %v, want %v and %v", fake.joined, fake.removed, tc.wantJoined, tc.wantRemove)
			}
		})
	}
}

// selfOnly is a member's own membership: it knows its own state and
// progress, and only guesses the others'.
type selfOnly struct {
	id, leader string
	commit     uint64
}

func (s selfOnly) Status(context.Context) (consensus.Status, error) {
	st := consensus.Status{Leader: s.leader, Term: 3}
	for _, id := range []string{"n1", "n2", "n3"} {
		m := consensus.Member{ID: id, Address: id + ":7946", State: consensus.StateUnknown, Voter: true}
		if id == s.leader {
			m.State = consensus.StateLeader
		}
		if id == s.id {
			m.Local, m.CommitIndex, m.AppliedIndex = true, s.commit, s.commit-1
			if id != s.leader {
				m.State = consensus.StateFollower
			}
		}
		st.Members = append(st.Members, m)
	}
	return st, nil
}
func (selfOnly) Join(context.Context, consensus.Peer) error { return nil }
func (selfOnly) Remove(context.Context, string) error       { return nil }

// Every node answers the same: each member as it reports itself, asked of
// it with the caller's credentials; a member that does not answer is
// unreachable.
func TestStatusIsTheSameFromEveryNode(t *testing.T) {
	urls := map[string]string{}
	var mu sync.Mutex
	var auths []string
	servers := map[string]*httptest.Server{}
	for i, id := range []string{"n1", "n2", "n3"} {
		h := NewStatusHandler(StatusOptions{
			Membership: selfOnly{id: id, leader: "n1", commit: uint64(100 + i)},
			APIURL:     func(id string) (string, bool) { u, ok := urls[id]; return u, ok },
		})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("local") == "true" {
				mu.Lock()
				auths = append(auths, r.Header.Get("Authorization"))
				mu.Unlock()
			}
			h.ServeHTTP(w, r)
		}))
		defer srv.Close()
		urls[id], servers[id] = srv.URL, srv
	}
	get := func(id string) Status {
		req, _ := http.NewRequest(http.MethodGet, urls[id]+StatusPath, nil)
		req.Header.Set("Authorization", "Bearer reader")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var env struct{ Data Status }
		if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
			t.Fatal(err)
		}
		return env.Data
	}
	first := get("n1")
	want := map[string]string{"n1": "leader 100", "n2": "follower 101", "n3": "follower 102"}
	for _, m := range first.Members {
		if got := fmt.Sprintf("%s %d", m.State, m.CommitIndex); got != want[m.ID] {
			t.Errorf("member %s: %s, want %s (its own report)", m.ID, got, want[m.ID])
		}
	}
	for _, id := range []string{"n2", "n3"} {
		if got := get(id); fmt.Sprint(got) != fmt.Sprint(first) {
			t.Errorf("%s answers %+v, n1 %+v: want the same", id, got, first)
		}
	}
	mu.Lock()
	for _, a := range auths {
		if a != "Bearer reader" {
			t.Errorf("a member was asked with Authorization %q, want the caller's", a)
		}
	}
	mu.Unlock()
	servers["n3"].Close()
	for _, m := range get("n1").Members {
		if want := map[string]string{"n1": "leader", "n2": "follower", "n3": StateUnreachable}[m.ID]; m.State != want {
			t.Errorf("n3 down: %s is %q, want %q", m.ID, m.State, want)
		}
	}
}
