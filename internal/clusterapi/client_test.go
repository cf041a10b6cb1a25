package clusterapi

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vigil-observability/vigil/internal/consensus"
)

// A follower's not_leader answer naming the leader's API is followed once,
// and only for changes; a single node's 404 is an APIError of type
// not_found.
func TestClientFollowsTheLeaderOnce(t *testing.T) {
	leaderFake := &fakeMembership{members: threeMembers()}
	leader := httptest.NewServer(mux(MembersOptions{Membership: leaderFake}))
	defer leader.Close()
	// A follower naming the leader, and one naming another follower that
	// names the leader in turn: the client stops after one hop.
	follower := httptest.NewServer(mux(MembersOptions{
		Membership: &fakeMembership{members: threeMembers(), err: &consensus.NotLeaderError{LeaderID: "n1"}},
		APIURLs:    map[string]string{"n1": leader.URL},
	}))
	defer follower.Close()
	stale := httptest.NewServer(mux(MembersOptions{
		Membership: &fakeMembership{members: threeMembers(), err: &consensus.NotLeaderError{LeaderID: "n2"}},
		APIURLs:    map[string]string{"n2": follower.URL},
	}))
	defer stale.Close()

	var told []string
	c := &Client{URL: follower.URL, Redirected: func(id, u string) { told = append(told, id+" "+u) }}
	st, err := c.Join(context.Background(), "n4", "10.0.0.4:7946")
	if err != nil {
		t.Fatalf("join through a follower: %v", err)
	}
	if len(st.Members) != 4 || st.Members[3].ID != "n4" || len(leaderFake.joined) != 1 {
		t.Errorf("status after the join %+v, leader joined %v: want n4 added on the leader", st, leaderFake.joined)
	}
	if len(told) != 1 || told[0] != "n1 "+leader.URL {
		t.Errorf("redirects told %v, want one to n1 at %s", told, leader.URL)
	}

	_, err = (&Client{URL: stale.URL}).Remove(context.Background(), "n3")
	var ae *APIError
	if !errors.As(err, &ae) || ae.Type != ErrorNotLeader || ae.NotLeader == nil || ae.NotLeader.Leader != "n1" {
		t.Errorf("remove through two followers: %v (%+v), want the second follower's not_leader naming n1", err, ae)
	}
	if len(leaderFake.removed) != 0 {
		t.Errorf("removed %v after two hops, want nothing", leaderFake.removed)
	}

	single := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", SingleNode, nil)
	}))
	defer single.Close()
	_, err = (&Client{URL: single.URL}).Status(context.Background())
	if !errors.As(err, &ae) || ae.Type != "not_found" || !strings.Contains(ae.Error(), "single-node") {
		t.Errorf("status of a single node: %v, want its not_found", err)
	}

	html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "<html>proxy</html>", http.StatusBadGateway)
	}))
	defer html.Close()
	if _, err = (&Client{URL: html.URL}).Status(context.Background()); err == nil || !strings.Contains(err.Error(), "HTTP 502") {
		t.Errorf("status from a non-API answer: %v, want an error naming HTTP 502", err)
	}
}

func TestWriteText(t *testing.T) {
	now := time.Date(2026, 12, 6, 22, 0, 0, 0, time.UTC)
	contact := now.Add(-1500 * time.Millisecond)
	for _, tc := range []struct {
		name string
		st   Status
		want []string
	}{
		{"three members", Status{Leader: "n1", Term: 3, Members: []Member{
			{ID: "n1", Address: "10.0.0.1:7946", State: "leader", Voter: true, CommitIndex: 42, AppliedIndex: 41},
			{ID: "n2", Address: "10.0.0.2:7946", State: "unknown", Voter: false},
			{ID: "n3", Address: "10.0.0.3:7946", State: "follower", Voter: true, CommitIndex: 40, AppliedIndex: 40, LastContact: &contact},
		}}, []string{
			"leader: n1\nterm:   3\n",
			"ID  ADDRESS        STATE     VOTER  COMMIT  APPLIED  LAST CONTACT\n",
			"n1  10.0.0.1:7946  leader    yes    42      41       -\n",
			"n2  10.0.0.2:7946  unknown   no     -       -        -\n",
			"n3  10.0.0.3:7946  follower  yes    40      40       1.5s ago\n",
		}},
		{"no leader", Status{Term: 9}, []string{"leader: none known", "term:   9"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := WriteText(&b, tc.st, now); err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("output\n%s\nlacks %q", b.String(), w)
				}
			}
		})
	}
}
