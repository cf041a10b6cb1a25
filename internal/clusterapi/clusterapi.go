// Package clusterapi is the HTTP side of a vigil cluster's membership: the
// shape GET /api/v1/cluster answers, the admin endpoints that add and
// remove members (POST /api/v1/cluster/members, DELETE
// /api/v1/cluster/members/{id}), and the client `vigil cluster` calls them
// with. Every answer is in the Prometheus API's envelope.
package clusterapi

import (
	"time"

	"github.com/vigil-observability/vigil/internal/consensus"
)

// Paths of the membership API.
const (
	StatusPath  = "/api/v1/cluster"
	MembersPath = "/api/v1/cluster/members"
)

// SingleNode is the error a node without a cluster: section answers.
const SingleNode = "vigil runs single-node: vigil.yaml has no cluster: section"

// Error types of the envelope, beside Prometheus's own (bad_data,
// not_found, unavailable, internal).
const (
	// ErrorNotLeader: a membership change sent to a follower. The answer's
	// data is a NotLeader naming the leader.
	ErrorNotLeader = "not_leader"
	// ErrorUnsupported: the backend has no membership changes (etcd, where
	// membership follows the nodes' leases).
	ErrorUnsupported = "unsupported"
)

// Status is the cluster as one node sees it: GET /api/v1/cluster's data,
// and the data of a successful membership change.
type Status struct {
	Leader  string   `json:"leader"`
	Term    uint64   `json:"term"`
	Members []Member `json:"members"`
}

// Member is consensus.Member with "unknown" as null rather than a zero
// time.
type Member struct {
	ID           string     `json:"id"`
	Address      string     `json:"address"`
	State        string     `json:"state"`
	Voter        bool       `json:"voter"`
	CommitIndex  uint64     `json:"commit_index"`
	AppliedIndex uint64     `json:"applied_index"`
	LastContact  *time.Time `json:"last_contact"`
}

// NewStatus converts a backend's status to the API's.
func NewStatus(st consensus.Status) Status {
	s := Status{Leader: st.Leader, Term: st.Term, Members: make([]Member, 0, len(st.Members))}
	for _, mb := range st.Members {
		m := Member{
			ID: mb.ID, Address: mb.Address, State: mb.State, Voter: mb.Voter,
			CommitIndex: mb.CommitIndex, AppliedIndex: mb.AppliedIndex,
		}
		if !mb.LastContact.IsZero() {
			lc := mb.LastContact.UTC()
			m.LastContact = &lc
		}
		s.Members = append(s.Members, m)
	}
	return s
}

// JoinRequest is POST /api/v1/cluster/members's body.
type JoinRequest struct {
	// ID is the new node's cluster.node_id.
	ID string `json:"id"`
	// Address is where the others reach its Raft transport (its
	// cluster.advertise_addr, or bind_addr), as host:port.
	Address string `json:"address"`
}

// NotLeader is the data of a not_leader answer: the leader this node knows
// of (ID empty during an election) and, when this node knows it, the base
// URL of the leader's vigil API, where the change can be sent instead.
type NotLeader struct {
	Leader       string `json:"leader"`
	LeaderAPIURL string `json:"leader_api_url,omitempty"`
}
