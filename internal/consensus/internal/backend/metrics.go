package backend

import (
	"github.com/prometheus/client_golang/prometheus"
)

// State is a node's consensus state as a scrape reads it.
type State struct {
	Leader          bool
	Term            uint64
	Commit, Applied uint64
	LastContactSecs float64
}

// Help holds the help texts of the vigil_cluster_* metrics whose meaning
// depends on the backend (a Raft log index or an etcd revision). The names
// are the same for every backend: dashboards and the doctor read them.
type Help struct {
	LeaderChanges, Term, Commit, Applied, LastContact string
}

// Metrics are a node's vigil_cluster_* metrics, in the style of etcd's and
// Consul's: who leads and how often that changes, how far this node has
// committed and applied, and how long ago it heard from the cluster.
type Metrics struct {
	// LeaderChanges counts the leaders this node has seen elected.
	LeaderChanges prometheus.Counter
	collectors    []prometheus.Collector
}

// NewMetrics reads the state with read when scraped rather than copying it
// on every change. extra are the backend's own collectors, registered and
// unregistered with the rest.
func NewMetrics(help Help, read func() State, extra ...prometheus.Collector) *Metrics {
	m := &Metrics{
		LeaderChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_cluster_leader_changes_total",
			Help: help.LeaderChanges,
		}),
	}
	state := &stateCollector{
		read:        read,
		leader:      prometheus.NewDesc("vigil_cluster_leader", "1 if this node is the cluster's leader.", nil, nil),
		term:        prometheus.NewDesc("vigil_cluster_term", help.Term, nil, nil),
		commit:      prometheus.NewDesc("vigil_cluster_commit_index", help.Commit, nil, nil),
		applied:     prometheus.NewDesc("vigil_cluster_applied_index", help.Applied, nil, nil),
		lastContact: prometheus.NewDesc("vigil_cluster_last_contact_seconds", help.LastContact, nil, nil),
	}
	m.collectors = append(append([]prometheus.Collector{m.LeaderChanges}, extra...), state)
	return m
}

// Register registers every collector with reg (none when reg is nil), or
// none of them if one fails.
func (m *Metrics) Register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	for i, c := range m.collectors {
		if err := reg.Register(c); err != nil {
			for _, done := range m.collectors[:i] {
				reg.Unregister(done)
			}
			return err
		}
	}
	return nil
}

// Unregister undoes Register.
func (m *Metrics) Unregister(reg prometheus.Registerer) {
	if reg == nil {
		return
	}
	for _, c := range m.collectors {
		reg.Unregister(c)
	}
}

type stateCollector struct {
	read                                       func() State
	leader, term, commit, applied, lastContact *prometheus.Desc
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.leader, c.term, c.commit, c.applied, c.lastContact} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.read()
	leader := 0.0
	if s.Leader {
		leader = 1
	}
	ch <- prometheus.MustNewConstMetric(c.leader, prometheus.GaugeValue, leader)
	ch <- prometheus.MustNewConstMetric(c.term, prometheus.GaugeValue, float64(s.Term))
	ch <- prometheus.MustNewConstMetric(c.commit, prometheus.GaugeValue, float64(s.Commit))
	ch <- prometheus.MustNewConstMetric(c.applied, prometheus.GaugeValue, float64(s.Applied))
	ch <- prometheus.MustNewConstMetric(c.lastContact, prometheus.GaugeValue, s.LastContactSecs)
}
