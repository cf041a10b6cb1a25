package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/rulefmt"

	"github.com/vigil-observability/vigil/internal/alerting"
	"github.com/vigil-observability/vigil/internal/clusterconfig"
	"github.com/vigil-observability/vigil/internal/config"
	"github.com/vigil-observability/vigil/internal/configcentre"
	"github.com/vigil-observability/vigil/internal/consensus"
	"github.com/vigil-observability/vigil/internal/consensus/statemux"
	"github.com/vigil-observability/vigil/internal/rules"
	"github.com/vigil-observability/vigil/internal/slo"
	"github.com/vigil-observability/vigil/internal/web"
)

// Names of the state machines on a cluster's log. The alerting state was
// the log's only machine before the mux: its entries and snapshots from
// then carry no name.
const (
	alertingMachine = "alerting"
	configMachine   = clusterconfig.MachineName
)

// clusterStateMachine is every state machine a cluster replicates, on one
// log.
func clusterStateMachine(state *alerting.ReplicatedState, conf *clusterconfig.Machine, centre *configcentre.Machine) (*statemux.Mux, error) {
	return statemux.New(statemux.Options{
		Machines: map[string]consensus.StateMachine{alertingMachine: state, configMachine: conf, configcentre.MachineName: centre},
		Legacy:   alertingMachine,
	})
}

// machineLog is the consensus node seen by one state machine's writer: its
// proposals are addressed to that machine.
type machineLog struct {
	consensusNode
	machine string
}

func (l machineLog) Propose(ctx context.Context, cmd []byte) ([]byte, error) {
	return l.consensusNode.Propose(ctx, statemux.Command(l.machine, cmd))
}

// sharedInstaller puts a cluster-wide configuration into service on this
// node: the rules (with this node's evaluation interval and external
// labels) and the Alertmanager, and what the doctor judges them by.
type sharedInstaller struct {
	rules          ruleSet
	am             *alerting.Alertmanager
	amDir          string
	prom           *atomic.Pointer[promconfig.Config]
	slos           *atomic.Pointer[[]slo.Spec]
	amUnconfigured *atomic.Bool
}

func (s *sharedInstaller) install(f clusterconfig.Files) error {
	var generated []rulefmt.RuleGroup
	if len(f.SLOs) > 0 {
		var err error
		if generated, err = slo.Generate(f.SLOs); err != nil {
			return fmt.Errorf("slos: %w", err)
		}
	}
	g := s.prom.Load().GlobalConfig
	if err := s.rules.Apply(rules.Config{
		Interval: time.Duration(g.EvaluationInterval), Files: f.RuleFiles, Generated: generated, ExternalLabels: g.ExternalLabels,
	}); err != nil {
		return err
	}
	amFile := f.Alertmanager
	if amFile == "" {
		var err error
		if amFile, err = alertmanagerFile(&config.Config{}, s.amDir); err != nil {
			return err
		}
	}
	if err := s.am.ApplyConfig(amFile); err != nil {
		return fmt.Errorf("alertmanager: %w", err)
	}
	specs := f.SLOs
	s.slos.Store(&specs)
	s.amUnconfigured.Store(f.Alertmanager == "")
	return nil
}

// startClusterConfig makes this node run the cluster's configuration (or,
// when there is none yet, its own files, from the data directory) before
// it may lead, and returns the Syncer that keeps it so; Run it. localErr is
// why this node's own rule files could not be loaded: it may still start
// on the cluster's, and only fails to when there is nothing else to run.
func startClusterConfig(cfg *config.Config, c *clusterNode, inst *sharedInstaller, localErr error, logger *slog.Logger, reg prometheus.Registerer) (*clusterconfig.Syncer, error) {
	local, err := clusterconfig.Collect(cfg)
	if err != nil {
		return nil, err
	}
	apiURLs := cfg.ClusterAPIURLs()
	s, err := clusterconfig.NewSyncer(clusterconfig.SyncerOptions{
		Machine: c.config, Log: machineLog{c.node, configMachine}, Leader: c.node.Leader,
		Forwarder: &clusterconfig.HTTPForwarder{
			Client: c.client, Authorize: forwardCallerAuth,
			LeaderURL: func(nl *consensus.NotLeaderError) (string, bool) {
				if cfg.Cluster.Backend == config.ClusterRaft {
					// Raft names the leader by its Raft address.
					u, ok := apiURLs[nl.LeaderID]
					return u, ok
				}
				return nl.LeaderAddress, nl.LeaderAddress != ""
			},
		},
		Dir: filepath.Join(cfg.DataDir, "cluster-config"), Install: inst.install,
		NodeID: clusterNodeID(cfg), Logger: logger.With("component", "cluster config"), Registerer: reg,
	})
	if err != nil {
		return nil, err
	}
	if err := s.Start(local); err != nil && localErr != nil {
		return nil, fmt.Errorf("rules: %w", localErr)
	}
	return s, nil
}

// clusterNodeID is this node's id, as openEtcd names it.
func clusterNodeID(cfg *config.Config) string {
	if cfg.Cluster.NodeID != "" {
		return cfg.Cluster.NodeID
	}
	h, _ := os.Hostname()
	return h
}

// mountClusterConfig serves a node's configuration status, and the
// leader's end of a follower's reload: a POST outside the listed paths,
// so it needs the admin role when authentication is on, as a reload does.
// With admin endpoints off no configuration is taken over HTTP, from a
// client or from another node: a follower's reload is refused with the
// reason, and SIGHUP on the leader is the way to reload.
func mountClusterConfig(w *web.Server, s *clusterconfig.Syncer, admin bool) {
	w.Handle("GET "+clusterconfig.StatusPath, s.StatusHandler())
	if admin {
		w.Handle("POST "+clusterconfig.InternalPath, s.InternalHandler())
		return
	}
	w.Handle("POST "+clusterconfig.InternalPath, refuseForwardedConfig)
}

// refuseForwardedConfig is the leader's answer to a forwarded reload with
// admin endpoints off, in the shape the forwarding node reports.
var refuseForwardedConfig = http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(http.StatusForbidden)
	_ = json.NewEncoder(rw).Encode(map[string]string{
		"error": "this node takes configurations from other nodes only with admin endpoints on (admin.enabled); reload on the leader with SIGHUP, or turn admin endpoints on everywhere",
	})
})

// reloadClusterConfig takes the cluster-wide part of a checked
// configuration to the cluster, and returns once this node runs it.
func reloadClusterConfig(ctx context.Context, s *clusterconfig.Syncer, next *config.Config) error {
	d, err := clusterconfig.Collect(next)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, clusterReloadTimeout)
	defer cancel()
	if _, err := s.Reload(ctx, d); err != nil {
		return fmt.Errorf("cluster configuration: %w", err)
	}
	return nil
}

// clusterReloadTimeout bounds a reload's wait for the leader and the log.
const clusterReloadTimeout = 30 * time.Second

// reloadStatus is POST /-/reload's status for a failed reload: 400 for a
// configuration refused (nothing changed anywhere), 503 when no leader
// could take it, 500 when it was committed but this node could not put it
// into service.
func reloadStatus(err error) int {
	switch {
	case errors.Is(err, clusterconfig.ErrUnavailable), errors.Is(err, consensus.ErrNotLeader), errors.Is(err, consensus.ErrLeadershipLost), errors.Is(err, consensus.ErrUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, clusterconfig.ErrNotInstalled):
		return http.StatusInternalServerError
	default:
		return http.StatusBadRequest
	}
}
