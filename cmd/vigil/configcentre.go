package main

import (
	"context"
	"net/http"
	"path/filepath"

	"github.com/vigil-observability/vigil/internal/config"
	"github.com/vigil-observability/vigil/internal/configcentre"
	"github.com/vigil-observability/vigil/internal/configcentre/configapi"
	"github.com/vigil-observability/vigil/internal/configcentre/guard"
	"github.com/vigil-observability/vigil/internal/consensus"
	"github.com/vigil-observability/vigil/internal/lifecycle"
	"github.com/vigil-observability/vigil/internal/query/httpapi"
	"github.com/vigil-observability/vigil/internal/web"
)

// configCentreDir is where a single node keeps the configuration centre.
const configCentreDir = "configcentre"

// mountConfigCentre mounts the configuration centre's API and adds its
// parts to grp. On a single node (cluster nil) its store is under the data
// directory and closes with the other stores; in a cluster its state is a
// machine on the consensus log, written through the leader (a follower
// forwards a write to it). The watches end in the ingest stage, before the
// listeners drain, so a 30-second long poll does not hold them.
//
// The grays' guard (guardOpts, given all but the state and the proposer)
// runs in the drain stage: it writes to the store and the Alertmanager,
// which stop later. In a cluster only the leader evaluates it, and its
// aborts are proposed on the log as a user's are.
//
// It returns the machine holding the state, for the doctor to read.
func mountConfigCentre(cfg *config.Config, cluster *clusterNode, grp *lifecycle.Group, webSrv *web.Server, opts configapi.Options, guardOpts guard.Options) (*configcentre.Machine, error) {
	var machine *configcentre.Machine
	if cluster != nil {
		machine = cluster.centre
		opts.Proposer = &configcentre.Replicated{Log: machineLog{cluster.node, configcentre.MachineName}, Machine: cluster.centre}
		opts.Reader, opts.Client = cluster.centre, cluster.client
		// The read index of the log the silences share: applied up to it,
		// this node's configuration holds every acknowledged write too.
		opts.ReadBarrier = cluster.repl.ReadBarrier
		apiURLs := cfg.ClusterAPIURLs()
		opts.LeaderURL = func(nl *consensus.NotLeaderError) (string, bool) {
			if cfg.Cluster.Backend == config.ClusterRaft {
				// Raft names the leader by its Raft address.
				u, ok := apiURLs[nl.LeaderID]
				return u, ok
			}
			return nl.LeaderAddress, nl.LeaderAddress != ""
		}
	} else {
		local, err := configcentre.OpenLocal(filepath.Join(cfg.DataDir, configCentreDir))
		if err != nil {
			return nil, err
		}
		if local.Dropped > 0 {
			opts.Logger.Warn("config centre: cut a torn record from the end of its log (a write that was never acknowledged)",
				"bytes", local.Dropped, "dir", filepath.Join(cfg.DataDir, configCentreDir))
		}
		grp.Go(stageStorage, "config centre", lifecycle.OnStop(func(context.Context) error { return local.Close() }))
		machine = local.Machine()
		opts.Proposer, opts.Reader = local, machine
	}
	guardOpts.Grays, guardOpts.Proposer = machine, opts.Proposer
	if cluster != nil {
		guardOpts.Leading = func() bool { return cluster.node.Leader().Self }
	}
	grp.Go(stageDrain, "config guard", guard.New(guardOpts))
	h := configapi.NewHandler(opts)
	grp.Go(stageIngest, "config watches", h)
	var api http.Handler = h
	if cluster != nil {
		// A follower asks the leader for the read index with the caller's
		// credentials, as it forwards a silence read's.
		api = withCallerAuth(h)
	}
	httpapi.Mount(webSrv, configapi.Routes, api)
	return machine, nil
}
