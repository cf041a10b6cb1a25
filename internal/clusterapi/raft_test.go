package clusterapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/vigil-observability/vigil/internal/consensus"
	"github.com/vigil-observability/vigil/internal/consensus/consensustest"
	"github.com/vigil-observability/vigil/internal/consensus/raft"
	"github.com/vigil-observability/vigil/internal/testport"
)

// On a real three-node Raft cluster, a join sent to a follower reaches the
// leader through the client, and the new node, started with Join, follows
// the leader; then a remove takes a member out of everyone's status.
func TestMembershipOnRaft(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four Raft nodes")
	}
	// The fourth node binds its address only when it joins, after the
	// others' API servers listened on port 0: testport's ports are never
	// handed out there.
	addrs := testport.Addrs(t, 4)
	var peers []consensus.Peer
	for i := range 3 {
		peers = append(peers, consensus.Peer{ID: "n" + strconv.Itoa(i+1), Address: addrs[i]})
	}
	dir := t.TempDir()
	apiURLs := map[string]string{}
	nodes := make([]*raft.Node, 4)
	// Each node's API: the URLs are filled in once all are listening.
	for i := range nodes {
		id := "n" + strconv.Itoa(i+1)
		n, err := raft.Open(raft.Options{
			NodeID: id, BindAddr: addrs[i], Peers: peers, Join: i == 3,
			DataDir: filepath.Join(dir, id), StateMachine: &consensustest.Recorder{},
			HeartbeatTimeout: 400 * time.Millisecond, ElectionTimeout: 400 * time.Millisecond,
			LeaderLeaseTimeout: 250 * time.Millisecond, CommitTimeout: 10 * time.Millisecond,
		})
		if err != nil {
			t.Fatalf("open %s: %v", id, err)
		}
		nodes[i] = n
		t.Cleanup(func() { _ = n.Close() })
		o := MembersOptions{Membership: n, APIURLs: apiURLs}
		mux := http.NewServeMux()
		mux.Handle("POST "+MembersPath, JoinHandler(o))
		mux.Handle("DELETE "+MembersPath+"/{id}", RemoveHandler(o))
		mux.Handle("GET "+StatusPath, NewStatusHandler(StatusOptions{Membership: n}))
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		apiURLs[id] = srv.URL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	leader := waitFor(t, ctx, "a leader among n1..n3", func() (string, bool) {
		l := nodes[0].Leader().ID
		return l, l != "" && l != "n4" && nodes[1].Leader().ID == l && nodes[2].Leader().ID == l
	})
	follower := "n1"
	if leader == "n1" {
		follower = "n2"
	}

	var redirected []string
	c := &Client{URL: apiURLs[follower], Redirected: func(id, _ string) { redirected = append(redirected, id) }}
	st, err := c.Join(ctx, "n4", addrs[3])
	if err != nil {
		t.Fatalf("join n4 through %s: %v", follower, err)
	}
	if !slices.Equal(redirected, []string{leader}) {
		t.Errorf("redirected to %v, want the leader %s", redirected, leader)
	}
	if ids := memberIDs(st); !slices.Equal(ids, []string{"n1", "n2", "n3", "n4"}) {
		t.Errorf("members after the join %v", ids)
	}
	waitFor(t, ctx, "n4 following "+leader, func() (string, bool) { return "", nodes[3].Leader().ID == leader })

	remove := "n3"
	if leader == "n3" {
		remove = "n2"
	}
	if st, err = (&Client{URL: apiURLs["n4"]}).Remove(ctx, remove); err != nil {
		t.Fatalf("remove %s through n4: %v", remove, err)
	}
	if ids := memberIDs(st); len(ids) != 3 || slices.Contains(ids, remove) {
		t.Errorf("members after removing %s: %v", remove, ids)
	}
	// Every remaining node's own status drops it once the change reaches it.
	for id, u := range apiURLs {
		if id == remove {
			continue
		}
		waitFor(t, ctx, id+" without "+remove, func() (string, bool) {
			st, err := (&Client{URL: u}).Status(ctx)
			return "", err == nil && len(st.Members) == 3 && !slices.Contains(memberIDs(st), remove)
		})
	}
}

func memberIDs(st Status) []string {
	var ids []string
	for _, m := range st.Members {
		ids = append(ids, m.ID)
	}
	slices.Sort(ids)
	return ids
}

func waitFor(t *testing.T, ctx context.Context, what string, f func() (string, bool)) string {
	t.Helper()
	for {
		if v, ok := f(); ok {
			return v
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no %s before the deadline", what)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
