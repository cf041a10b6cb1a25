package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promcommon "github.com/prometheus/common/config"
	promrules "github.com/prometheus/prometheus/rules"

	"github.com/vigil-observability/vigil/internal/alerting"
	"github.com/vigil-observability/vigil/internal/clusterapi"
	"github.com/vigil-observability/vigil/internal/clusterconfig"
	"github.com/vigil-observability/vigil/internal/config"
	"github.com/vigil-observability/vigil/internal/configcentre"
	"github.com/vigil-observability/vigil/internal/consensus"
	"github.com/vigil-observability/vigil/internal/consensus/etcd"
	"github.com/vigil-observability/vigil/internal/consensus/raft"
	"github.com/vigil-observability/vigil/internal/lifecycle"
	"github.com/vigil-observability/vigil/internal/rules"
	"github.com/vigil-observability/vigil/internal/shutdown"
)

// consensusNode is what the server uses of a consensus backend's node.
type consensusNode interface {
	consensus.Leadership
	consensus.Replicated
	consensus.Membership
	// Silence reads take a read index (alerting.Replicator.ReadBarrier),
	// and a leader names where a forwarded write is in the log.
	consensus.ReadIndexer
	AppliedIndex() uint64
	Close() error
}

// clusterNode is this server's membership of a cluster (cluster: in
// vigil.yaml): the consensus node, and the replicated alerting state and
// configuration it applies to.
type clusterNode struct {
	node   consensusNode
	repl   *alerting.Replicator
	config *clusterconfig.Machine
	// centre is the configuration centre's state (docs/config-centre.md).
	centre *configcentre.Machine
	// client calls the other nodes' APIs (cluster.api_tls_config).
	client *http.Client
}

// openCluster opens the consensus node (raft: under <data_dir>/cluster;
// etcd: under cluster.prefix), with the cluster's silences and
// notification log, and its configuration, as its state machines. The
// node restores and replays that state before it returns.
func openCluster(cfg *config.Config, logger *slog.Logger, reg prometheus.Registerer) (*clusterNode, error) {
	c := cfg.Cluster
	state, err := alerting.NewReplicatedState(alerting.ReplicatedStateOptions{
		Logger: logger.With("component", "alerting state"), Registerer: reg,
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	client, err := clusterAPIClient(c)
	if err != nil {
		return nil, err
	}
	conf := clusterconfig.NewMachine()
	centre := configcentre.NewMachine()
	machines, err := clusterStateMachine(state, conf, centre)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	var node consensusNode
	var fwd alerting.Forwarder
	switch c.Backend {
	case config.ClusterRaft:
		peers := make([]consensus.Peer, len(c.Peers))
		for i, p := range c.Peers {
			peers[i] = consensus.Peer{ID: p.ID, Address: p.Address}
		}
		node, err = raft.Open(raft.Options{
			NodeID: c.NodeID, BindAddr: c.BindAddr, AdvertiseAddr: c.AdvertiseAddr,
			Peers: peers, Join: c.Join, ClusterID: c.ClusterID,
			DataDir:      filepath.Join(cfg.DataDir, "cluster"),
			StateMachine: machines,
			// Filled in by the config's validation.
			HeartbeatTimeout:   time.Duration(c.Raft.HeartbeatTimeout),
			ElectionTimeout:    time.Duration(c.Raft.ElectionTimeout),
			LeaderLeaseTimeout: time.Duration(c.Raft.LeaderLeaseTimeout),
			CommitTimeout:      time.Duration(c.Raft.CommitTimeout),
			Logger:             logger.With("component", "consensus"), Registerer: reg,
		})
		// Raft names the leader by id and its Raft address: the API
		// addresses are configuration.
		fwd = &alerting.HTTPForwarder{APIURLs: cfg.ClusterAPIURLs(), Client: client, Authorize: forwardCallerAuth}
	case config.ClusterEtcd:
		node, err = openEtcd(cfg, machines, logger, reg)
		// Each node publishes its API address beside its id in etcd.
		fwd = leaderAddressForwarder{client: client}
	default:
		return nil, fmt.Errorf("cluster.backend %q: use raft or etcd", c.Backend)
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	repl, err := alerting.NewReplicator(alerting.ReplicatorOptions{
		State: state, Log: machineLog{node, alertingMachine}, Forwarder: fwd,
		Logger: logger.With("component", "alerting replication"), Registerer: reg,
	})
	if err != nil {
		_ = node.Close()
		return nil, fmt.Errorf("cluster: %w", err)
	}
	return &clusterNode{node: node, repl: repl, config: conf, centre: centre, client: client}, nil
}

// clusterAPIClient is the client for calls to the other nodes' APIs:
// cluster.api_tls_config, and a bound on each call so that a node that
// accepts the connection and never answers cannot hold a write forever.
func clusterAPIClient(c *config.Cluster) (*http.Client, error) {
	tc, err := promcommon.NewTLSConfig(&c.APITLS)
	if err != nil {
		return nil, fmt.Errorf("cluster.api_tls_config: %w", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}, nil
}

// openEtcd opens a node on etcd, named cluster.node_id (this machine's
// name when empty) and reachable at ClusterSelfAPIURL.
func openEtcd(cfg *config.Config, state consensus.StateMachine, logger *slog.Logger, reg prometheus.Registerer) (consensusNode, error) {
	c := cfg.Cluster
	id := c.NodeID
	if id == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("cluster.node_id is empty and the host name unknown: %w", err)
		}
		id = h
	}
	opts := etcd.Options{
		Endpoints: c.Endpoints, Prefix: c.Prefix, NodeID: id, Address: cfg.ClusterSelfAPIURL(),
		ClusterID: c.ClusterID, StateMachine: state,
		Logger: logger.With("component", "consensus"), Registerer: reg,
	}
	// A TLS config, even an empty one, would make the client speak TLS to
	// http:// endpoints.
	if slices.ContainsFunc(c.Endpoints, func(e string) bool { return strings.HasPrefix(e, "https://") }) {
		tc, err := promcommon.NewTLSConfig(&c.TLS)
		if err != nil {
			return nil, fmt.Errorf("cluster.tls_config: %w", err)
		}
		opts.TLS = tc
	}
	return etcd.Open(opts)
}

// leaderAddressForwarder forwards to the API address the backend names
// with the leader (etcd's nodes publish theirs).
type leaderAddressForwarder struct{ client *http.Client }

// ReadIndex implements alerting.ReadIndexForwarder. etcd gives every node
// a read index itself, so this is only asked when a backend does not.
func (l leaderAddressForwarder) ReadIndex(ctx context.Context, leader *consensus.NotLeaderError) (uint64, error) {
	return l.forwarder(leader).ReadIndex(ctx, leader)
}

func (l leaderAddressForwarder) forwarder(leader *consensus.NotLeaderError) *alerting.HTTPForwarder {
	f := &alerting.HTTPForwarder{Client: l.client, Authorize: forwardCallerAuth}
	if leader.LeaderID != "" && leader.LeaderAddress != "" {
		f.APIURLs = map[string]string{leader.LeaderID: leader.LeaderAddress}
	}
	return f
}

func (l leaderAddressForwarder) Forward(ctx context.Context, leader *consensus.NotLeaderError, op alerting.SilenceOp) (alerting.SilenceWrite, error) {
	return l.forwarder(leader).Forward(ctx, leader, op)
}

// callerAuthKey keeps a silence write's Authorization header in its
// context (withCallerAuth).
type callerAuthKey struct{}

// withCallerAuth keeps each request's Authorization header in its context,
// so that a follower forwards a silence write to the leader with the
// caller's own credentials: the leader checks them again, and every node
// of a cluster has the same users.
func withCallerAuth(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a := r.Header.Get("Authorization"); a != "" {
			r = r.WithContext(context.WithValue(r.Context(), callerAuthKey{}, a))
		}
		h.ServeHTTP(w, r)
	})
}

// forwardCallerAuth is the forwarder's half of withCallerAuth.
func forwardCallerAuth(ctx context.Context, req *http.Request) {
	if a, ok := ctx.Value(callerAuthKey{}).(string); ok {
		req.Header.Set("Authorization", a)
	}
}

// readyCheck fails while this node knows no leader: without a quorum its
// silence writes fail and nobody evaluates the rules, so a load balancer
// is better off elsewhere.
func (c *clusterNode) readyCheck() error {
	if c.node.Leader().ID == "" {
		return errors.New("no cluster leader known (no quorum, or an election under way)")
	}
	return nil
}

// closeConsensus hands leadership on if this node has it, so the others
// need not wait out a heartbeat timeout, then closes the node. It runs
// after the Alertmanager, whose last notification log entries go through
// the node, and before storage.
func closeConsensus(logger *slog.Logger, n consensusNode) lifecycle.Component {
	return lifecycle.OnStop(func(ctx context.Context) error {
		if n.Leader().Self {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := n.Resign(ctx)
			cancel()
			if err != nil {
				logger.Warn("leadership not handed on before stopping; the others elect a leader after their heartbeat timeout", "err", err)
			}
		}
		if err := n.Close(); err != nil {
			return fmt.Errorf("consensus: %w", err)
		}
		return nil
	})
}

// offTimeout bounds how long a deposed leader waits for its rule
// evaluations to end; one outlasting it is left to finish on its own.
const offTimeout = 10 * time.Second

// followLeader turns sw on while this node leads and off while it does
// not, until the stop (the group's stop then turns sw off itself). An On
// refused because the last term's run is still stopping is tried again
// every retryOn while this node still leads.
func followLeader(logger *slog.Logger, l consensus.Leadership, sw *lifecycle.Switch) lifecycle.Component {
	return lifecycle.Loop(func(ctx context.Context) {
		changes, cancel := l.WatchLeader()
		defer cancel()
		var info consensus.LeaderInfo
		var retry <-chan time.Time
		leading := false
		for {
			select {
			case <-ctx.Done():
				return
			case next, ok := <-changes:
				if !ok {
					return
				}
				info = next
			case <-retry:
			}
			retry = nil
			switch {
			case info.Self && !leading:
				if err := sw.On(); err != nil {
					logger.Error("leading, but rule evaluation did not start; trying again", "term", info.Term, "err", err)
					retry = time.After(retryOn)
					continue
				}
				leading = true
				logger.Info("leading the cluster: evaluating rules", "term", info.Term)
			case !info.Self && leading:
				leading = false
				offCtx, cancelOff := context.WithTimeout(context.Background(), offTimeout)
				err := sw.Off(offCtx)
				cancelOff()
				logger.Info("no longer leading: rule evaluation stopped", "leader", info.ID, "term", info.Term, "err", err)
			}
		}
	})
}

// retryOn is how often followLeader tries again to start rule evaluation.
const retryOn = time.Second

// leaderRules evaluates rules only while this node leads. Each term it
// leads runs a new rules.Manager, built from the latest configuration,
// because a Prometheus rule manager cannot run again once stopped. Between
// terms the API and the doctor see the groups of the last term's manager,
// none before the first. Safe for concurrent use.
type leaderRules struct {
	cfg        *config.Config
	logger     *slog.Logger
	newManager func(*promrules.Metrics) (*rules.Manager, error)
	// metrics are shared by every term's manager: a registry takes a set
	// of collectors only once.
	metrics *promrules.Metrics

	mu   sync.Mutex
	conf rules.Config
	cur  *rules.Manager // running; nil between terms
	last *rules.Manager // what RuleGroups reads; nil before the first term
}

func newLeaderRules(cfg *config.Config, logger *slog.Logger, reg prometheus.Registerer, newManager func(*promrules.Metrics) (*rules.Manager, error)) *leaderRules {
	return &leaderRules{cfg: cfg, logger: logger, newManager: newManager, metrics: promrules.NewGroupMetrics(reg)}
}

// Apply sets the rules every later term runs, and the running term's.
func (l *leaderRules) Apply(c rules.Config) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cur != nil {
		if err := l.cur.Apply(c); err != nil {
			return err
		}
	} else if err := rules.Validate(c.Files, l.logger); err != nil {
		return err
	}
	l.conf = c
	return nil
}

// RuleGroups implements the API's and the doctor's view of the rules.
func (l *leaderRules) RuleGroups() []*promrules.Group {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		return nil
	}
	return l.last.RuleGroups()
}

// AlertingRules implements the API's view of the alerting rules.
func (l *leaderRules) AlertingRules() []*promrules.AlertingRule {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		return nil
	}
	return l.last.AlertingRules()
}

// Run evaluates rules for one term, until ctx ends: the lifecycle.Switch
// followLeader turns runs it.
func (l *leaderRules) Run(ctx context.Context) error {
	// Nobody waits on this run's error until leadership ends, so a rule
	// evaluation that cannot start says so now.
	m, err := l.newManager(l.metrics)
	if err != nil {
		l.logger.Error("leading, but the rules cannot run this term", "err", err)
		return err
	}
	l.mu.Lock()
	if err := m.Apply(l.conf); err != nil {
		l.mu.Unlock()
		l.logger.Error("leading, but the rules cannot run this term", "err", err)
		return err
	}
	l.cur, l.last = m, m
	l.mu.Unlock()

	ran := make(chan struct{})
	go func() {
		defer close(ran)
		m.Run()
	}()
	<-ctx.Done()
	// A reload from here on applies to the next term only: Apply on a
	// manager being stopped would start its groups again.
	l.mu.Lock()
	l.cur = nil
	l.mu.Unlock()
	if err := shutdown.Wait(lifecycle.StopContext(ctx), "rules", m.Stop); err != nil {
		l.logger.Warn("a rule evaluation was still running when leadership or the process ended; its result is dropped",
			"err", err, "shutdown_timeout", l.cfg.ShutdownTimeout)
		return nil
	}
	<-ran
	return nil
}

// clusterHandler serves GET /api/v1/cluster: the cluster's status, or on
// a single node (c nil), a 404 saying so. On Raft each member's own state
// and progress are asked of it through its api_url; etcd already holds
// what each member reports of itself.
func clusterHandler(cfg *config.Config, c *clusterNode) http.Handler {
	if c == nil {
		return clusterapi.NewStatusHandler(clusterapi.StatusOptions{})
	}
	o := clusterapi.StatusOptions{Membership: c.node, Client: c.client}
	if cfg.Cluster.Backend == config.ClusterRaft {
		urls := cfg.ClusterAPIURLs()
		o.APIURL = func(id string) (string, bool) {
			u, ok := urls[id]
			return u, ok
		}
	}
	return clusterapi.NewStatusHandler(o)
}
