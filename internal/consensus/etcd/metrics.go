package etcd

import (
	"time"

	"github.com/vigil-observability/vigil/internal/consensus/internal/backend"
)

// newMetrics carries the raft backend's names where they mean the same
// here: the index of this backend is an etcd revision and the term is the
// leader's token.
func newMetrics(n *Node) *backend.Metrics {
	return backend.NewMetrics(backend.Help{
		LeaderChanges: "Leaders this node has seen elected.",
		Term:          "The leader's fencing token (the etcd revision its election key was created at).",
		Commit:        "The etcd revision of the newest command this node has seen.",
		Applied:       "The etcd revision of the last command applied to this node's state machine.",
		LastContact:   "Time since this node last had an answer from etcd.",
	}, n.metricsState)
}

func (n *Node) metricsState() backend.State {
	s := backend.State{
		Leader:  n.current() != nil,
		Term:    n.leaders.Get().Term,
		Commit:  uint64(n.commit.Load()),
		Applied: uint64(n.applied.Load()),
	}
	if last := n.lastContact.Load(); last != 0 {
		s.LastContactSecs = time.Since(time.Unix(0, last)).Seconds()
	}
	return s
}
