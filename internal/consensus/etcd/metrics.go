package etcd

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics carry the raft backend's names where they mean the same here:
// the index of this backend is an etcd revision and the term is the
// leader's token.
type metrics struct {
	leaderChanges prometheus.Counter
	state         *stateCollector
}

func newMetrics(n *Node) *metrics {
	return &metrics{
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_cluster_leader_changes_total",
			Help: "Leaders this node has seen elected.",
		}),
		state: &stateCollector{
			node:        n,
			leader:      prometheus.NewDesc("vigil_cluster_leader", "1 if this node is the cluster's leader.", nil, nil),
			term:        prometheus.NewDesc("vigil_cluster_term", "The leader's fencing token (the etcd revision its election key was created at).", nil, nil),
			commit:      prometheus.NewDesc("vigil_cluster_commit_index", "The etcd revision of the newest command this node has seen.", nil, nil),
			applied:     prometheus.NewDesc("vigil_cluster_applied_index", "The etcd revision of the last command applied to this node's state machine.", nil, nil),
			lastContact: prometheus.NewDesc("vigil_cluster_last_contact_seconds", "Time since this node last had an answer from etcd.", nil, nil),
		},
	}
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.leaderChanges, m.state}
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

// stateCollector reads the node's state when scraped.
type stateCollector struct {
	node                                       *Node
	leader, term, commit, applied, lastContact *prometheus.Desc
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.leader, c.term, c.commit, c.applied, c.lastContact} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.node
	leader, contact := 0.0, 0.0
	if n.current() != nil {
		leader = 1
	}
	if last := n.lastContact.Load(); last != 0 {
		contact = time.Since(time.Unix(0, last)).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(c.leader, prometheus.GaugeValue, leader)
	ch <- prometheus.MustNewConstMetric(c.term, prometheus.GaugeValue, float64(n.leaders.get().Term))
	ch <- prometheus.MustNewConstMetric(c.commit, prometheus.GaugeValue, float64(n.commit.Load()))
	ch <- prometheus.MustNewConstMetric(c.applied, prometheus.GaugeValue, float64(n.applied.Load()))
	ch <- prometheus.MustNewConstMetric(c.lastContact, prometheus.GaugeValue, contact)
}
