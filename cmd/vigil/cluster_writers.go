package main

import (
	"context"
	"log/slog"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	promrules "github.com/prometheus/prometheus/rules"

	"github.com/vigil-observability/vigil/internal/config"
	"github.com/vigil-observability/vigil/internal/consensus"
	"github.com/vigil-observability/vigil/internal/doctor"
	"github.com/vigil-observability/vigil/internal/lifecycle"
	"github.com/vigil-observability/vigil/internal/rules"
)

// Who writes what in a cluster depends on the store (docs/cluster.md,
// "What runs where"). On the embedded store each node has its own data,
// like a Prometheus HA pair: every node evaluates every rule on it, and
// only the leader's alerts reach an Alertmanager. On a store the nodes
// share (ClickHouse) one writer per series: the leader evaluates the
// rules, and what every node derives itself carries its node label.

// sharedStore reports whether the nodes of a cluster write one store.
func sharedStore(cfg *config.Config) bool {
	return cfg.Storage.Backend == config.BackendClickHouse
}

// rulesNotify is the NotifyFunc for the rules manager: next itself, or on a
// cluster node of the embedded store a gate in front of it that
// clusterRules opens while this node leads.
func rulesNotify(cfg *config.Config, cluster *clusterNode, next promrules.NotifyFunc) (promrules.NotifyFunc, *rules.NotifyGate) {
	if cluster == nil || sharedStore(cfg) {
		return next, nil
	}
	g := rules.NewNotifyGate(next)
	return g.Notify, g
}

// clusterRules builds the rules of a cluster node, and start, which starts
// them. With gate (the embedded store) one manager evaluates every rule
// for the life of the process and gate passes its alerts on while this
// node leads. Without (a shared store) the rules run on the leader only, a
// manager per term. localErr is why this node's own rule files could not
// be applied: not fatal in a cluster, whose configuration replaces them.
func clusterRules(grp *lifecycle.Group, cfg *config.Config, logger *slog.Logger, reg prometheus.Registerer, cluster *clusterNode,
	gate *rules.NotifyGate, newRules func(*promrules.Metrics) (*rules.Manager, error), initial rules.Config) (rs ruleSet, start func(), localErr, err error) {
	if gate == nil {
		lr := newLeaderRules(cfg, logger, reg, newRules)
		localErr = lr.Apply(initial)
		return lr, func() {
			leaderOnly := lifecycle.NewSwitch(lr)
			grp.Go(stageDrain, "rules", leaderOnly)
			grp.Go(stageIngest, "leadership", followLeader(logger, cluster.node, leaderOnly))
		}, localErr, nil
	}
	m, err := newRules(nil)
	if err != nil {
		return nil, nil, nil, err
	}
	localErr = m.Apply(initial)
	return m, func() {
		grp.Go(stageDrain, "rules", runRules(cfg, logger, m))
		grp.Go(stageIngest, "leadership", gateOnLeader(logger, cluster.node, gate, m))
	}, localErr, nil
}

// gateOnLeader opens gate while this node leads and closes it while it
// does not, until the stop. The fence before each notification still
// decides; the gate keeps a follower's Alertmanager free of alerts it
// would only fail to send.
func gateOnLeader(logger *slog.Logger, l consensus.Leadership, gate *rules.NotifyGate, m interface {
	AlertingRules() []*promrules.AlertingRule
}) lifecycle.Component {
	return lifecycle.Loop(func(ctx context.Context) {
		changes, cancel := l.WatchLeader()
		defer cancel()
		for {
			select {
			case <-ctx.Done():
				return
			case info, ok := <-changes:
				if !ok {
					return
				}
				switch {
				case info.Self && !gate.IsOpen():
					gate.Open(m.AlertingRules())
					logger.Info("leading the cluster: sending alerts", "term", info.Term)
				case !info.Self && gate.IsOpen():
					gate.Close()
					logger.Info("no longer leading: alerts evaluated, not sent", "leader", info.ID, "term", info.Term)
				}
			}
		}
	})
}

// doctorLeading is doctor.Options.Leading: on a cluster node of a shared
// store, whether this node leads; nil (every check on every node, each on
// its own data) otherwise.
func doctorLeading(cfg *config.Config, cluster *clusterNode) func() bool {
	if cluster == nil || !sharedStore(cfg) {
		return nil
	}
	return func() bool { return cluster.node.Leader().Self }
}

// recheckOnLeader runs the doctor's checks again whenever this node gains
// or loses the leadership of a cluster on a shared store, so that the
// checks of the shared data move with it at once, instead of being raised
// by two nodes (or none) until the next interval.
func recheckOnLeader(grp *lifecycle.Group, cfg *config.Config, cluster *clusterNode, doc *doctor.Doctor) {
	if doctorLeading(cfg, cluster) == nil {
		return
	}
	grp.Go(stageDrain, "doctor leadership", lifecycle.Loop(func(ctx context.Context) {
		changes, cancel := cluster.node.WatchLeader()
		defer cancel()
		leading := false
		for {
			select {
			case <-ctx.Done():
				return
			case info, ok := <-changes:
				if !ok {
					return
				}
				if info.Self != leading {
					leading = info.Self
					doc.Check(ctx)
				}
			}
		}
	}))
}

// leaderWrites says whether this node writes the series that one node of a
// cluster on a shared store writes alone (the scraped ones): the leader.
// The scraper starts before the cluster is open; until then this node
// does not write.
type leaderWrites struct {
	leadership atomic.Value // consensus.Leadership, once attached
}

// newLeaderWrites is nil, which writes always, except on a cluster node of
// a shared store.
func newLeaderWrites(cfg *config.Config) *leaderWrites {
	if cfg.Cluster == nil || !sharedStore(cfg) {
		return nil
	}
	return &leaderWrites{}
}

// attach makes l's leadership decide.
func (w *leaderWrites) attach(l consensus.Leadership) {
	if w != nil {
		w.leadership.Store(l)
	}
}

// writing is scrape.Options.Writing: nil on a node that always writes.
func (w *leaderWrites) writing() func() bool {
	if w == nil {
		return nil
	}
	return func() bool {
		l, ok := w.leadership.Load().(consensus.Leadership)
		return ok && l.Leader().Self
	}
}
