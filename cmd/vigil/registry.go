package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-observability/vigil/internal/lifecycle"
	"github.com/vigil-observability/vigil/internal/query/httpapi"
	"github.com/vigil-observability/vigil/internal/registry"
	"github.com/vigil-observability/vigil/internal/registry/consulapi"
	"github.com/vigil-observability/vigil/internal/web"
)

// mountRegistry mounts the service registry (docs/registry.md): its state
// is in memory on this node, instances register again after a restart as
// they do with a Consul agent, and in a cluster each node holds the
// instances that registered with it. Its expiry, probes and blocking
// queries stop in the ingest stage, before the listeners drain, so a
// 5-minute blocking query does not hold them.
//
// HTTP checks dial through dial, the notifications' outbound policy, so a
// registration cannot point vigil's probes at the cloud metadata service.
func mountRegistry(grp *lifecycle.Group, webSrv *web.Server, instances *registry.Registry, logger *slog.Logger, reg prometheus.Registerer, dial func(ctx context.Context, network, address string) (net.Conn, error)) {
	node, err := os.Hostname()
	if err != nil || node == "" {
		node = "vigil"
	}
	h := consulapi.NewHandler(consulapi.Options{Registry: instances, NodeName: node, Logger: logger, Registerer: reg})
	runner := &registry.Runner{Registry: instances, Logger: logger, Client: &http.Client{
		Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true},
		// A redirect is an answer (critical), not followed.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	grp.Go(stageIngest, "registry", lifecycle.Func(func(ctx context.Context) error {
		done := make(chan error, 1)
		go func() { done <- runner.Run(ctx) }()
		err := h.Run(ctx)
		return errors.Join(err, <-done)
	}))
	httpapi.Mount(webSrv, consulapi.Routes, h)
}
