package main

import (
	"context"
	"path/filepath"

	"github.com/vigil-observability/vigil/internal/config"
	"github.com/vigil-observability/vigil/internal/configcentre"
	"github.com/vigil-observability/vigil/internal/configcentre/configapi"
	"github.com/vigil-observability/vigil/internal/lifecycle"
	"github.com/vigil-observability/vigil/internal/query/httpapi"
	"github.com/vigil-observability/vigil/internal/web"
)

// configCentreDir is where a single node keeps the configuration centre.
const configCentreDir = "configcentre"

// mountConfigCentre opens the configuration centre's store under the data
// directory, mounts its API and adds its parts to grp: the watches end in
// the ingest stage (before the listeners drain, so a 30-second long poll
// does not hold them), the store closes with the others.
func mountConfigCentre(cfg *config.Config, grp *lifecycle.Group, webSrv *web.Server, opts configapi.Options) error {
	local, err := configcentre.OpenLocal(filepath.Join(cfg.DataDir, configCentreDir))
	if err != nil {
		return err
	}
	if local.Dropped > 0 {
		opts.Logger.Warn("config centre: cut a torn record from the end of its log (a write that was never acknowledged)",
			"bytes", local.Dropped, "dir", filepath.Join(cfg.DataDir, configCentreDir))
	}
	grp.Go(stageStorage, "config centre", lifecycle.OnStop(func(context.Context) error { return local.Close() }))
	opts.Proposer, opts.Reader = local, local.Machine()
	h := configapi.NewHandler(opts)
	grp.Go(stageIngest, "config watches", h)
	httpapi.Mount(webSrv, configapi.Routes, h)
	return nil
}
