package raft

import (
	"time"

	hraft "github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-observability/vigil/internal/consensus/internal/backend"
)

// newMetrics adds to the shared metrics how long the durable log takes to
// write (its fsync).
func newMetrics(n *Node) (*backend.Metrics, prometheus.Histogram) {
	logStore := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "vigil_cluster_log_store_duration_seconds",
		Help:    "Time to write entries to the durable Raft log, fsync included.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	})
	return backend.NewMetrics(backend.Help{
		LeaderChanges: "Leaders this node has seen elected (a new leader, or the same one in a new term).",
		Term:          "This node's current Raft term (the leader's fencing token).",
		Commit:        "The last log index this node knows is committed.",
		Applied:       "The last log index applied to this node's state machine.",
		LastContact:   "Time since this follower last heard from the leader; 0 on the leader.",
	}, n.metricsState, logStore), logStore
}

// metricsState reads raft's state when scraped rather than copying it on
// every change.
func (n *Node) metricsState() backend.State {
	r := n.raft
	s := backend.State{Term: r.CurrentTerm(), Commit: r.CommitIndex(), Applied: r.AppliedIndex()}
	if r.State() == hraft.Leader {
		s.Leader = true
	} else if last := r.LastContact(); !last.IsZero() {
		s.LastContactSecs = time.Since(last).Seconds()
	}
	return s
}

// timedLogStore measures the writes of the durable log.
type timedLogStore struct {
	hraft.LogStore
	h prometheus.Histogram
}

func (s timedLogStore) StoreLog(l *hraft.Log) error {
	defer s.observe(time.Now())
	return s.LogStore.StoreLog(l)
}

func (s timedLogStore) StoreLogs(logs []*hraft.Log) error {
	defer s.observe(time.Now())
	return s.LogStore.StoreLogs(logs)
}

func (s timedLogStore) observe(start time.Time) { s.h.Observe(time.Since(start).Seconds()) }
