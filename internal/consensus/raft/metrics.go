package raft

import (
	"time"

	hraft "github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the node's own, in the style of etcd's and Consul's: who
// leads and how often that changes, how far this node has committed and
// applied, and how long the durable log takes to write (its fsync).
type metrics struct {
	leaderChanges prometheus.Counter
	logStore      prometheus.Histogram
	state         *stateCollector
}

func newMetrics() *metrics {
	return &metrics{
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_cluster_leader_changes_total",
			Help: "Leaders this node has seen elected (a new leader, or the same one in a new term).",
		}),
		logStore: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vigil_cluster_log_store_duration_seconds",
			Help:    "Time to write entries to the durable Raft log, fsync included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		state: &stateCollector{
			leader:      prometheus.NewDesc("vigil_cluster_leader", "1 if this node is the cluster's leader.", nil, nil),
			term:        prometheus.NewDesc("vigil_cluster_term", "This node's current Raft term (the leader's fencing token).", nil, nil),
			commit:      prometheus.NewDesc("vigil_cluster_commit_index", "The last log index this node knows is committed.", nil, nil),
			applied:     prometheus.NewDesc("vigil_cluster_applied_index", "The last log index applied to this node's state machine.", nil, nil),
			lastContact: prometheus.NewDesc("vigil_cluster_last_contact_seconds", "Time since this follower last heard from the leader; 0 on the leader.", nil, nil),
		},
	}
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.leaderChanges, m.logStore, m.state}
}

func (m *metrics) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	for i, c := range m.collectors() {
		if err := reg.Register(c); err != nil {
			for _, done := range m.collectors()[:i] {
				reg.Unregister(done)
			}
			return err
		}
	}
	return nil
}

func (m *metrics) unregister(reg prometheus.Registerer) {
	if reg == nil {
		return
	}
	for _, c := range m.collectors() {
		reg.Unregister(c)
	}
}

// stateCollector reads raft's state when scraped rather than copying it on
// every change.
type stateCollector struct {
	raft                                       *hraft.Raft
	leader, term, commit, applied, lastContact *prometheus.Desc
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.leader, c.term, c.commit, c.applied, c.lastContact} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	r := c.raft
	leader, contact := 0.0, 0.0
	if r.State() == hraft.Leader {
		leader = 1
	} else if last := r.LastContact(); !last.IsZero() {
		contact = time.Since(last).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(c.leader, prometheus.GaugeValue, leader)
	ch <- prometheus.MustNewConstMetric(c.term, prometheus.GaugeValue, float64(r.CurrentTerm()))
	ch <- prometheus.MustNewConstMetric(c.commit, prometheus.GaugeValue, float64(r.CommitIndex()))
	ch <- prometheus.MustNewConstMetric(c.applied, prometheus.GaugeValue, float64(r.AppliedIndex()))
	ch <- prometheus.MustNewConstMetric(c.lastContact, prometheus.GaugeValue, contact)
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
