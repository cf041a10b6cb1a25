package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"

	promrules "github.com/prometheus/prometheus/rules"

	"github.com/vigil-observability/vigil/internal/alerting"
	"github.com/vigil-observability/vigil/internal/ingest/scrape"
	"github.com/vigil-observability/vigil/internal/query/httpapi"
	"github.com/vigil-observability/vigil/internal/registry"
	"github.com/vigil-observability/vigil/internal/snapshot"
	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/web"
)

// mountSnapshots mounts the incident snapshots (docs/snapshots.md):
// bundles under <data_dir>/snapshots, instances found in the registry or
// the scrape targets and asked through dial, the outbound policy of the
// registry's HTTP checks and the notifications. Taking one is a POST, so
// it needs the admin role under authentication; listing and downloading
// need read.
func mountSnapshots(webSrv *web.Server, dataDir string, logger *slog.Logger, instances *registry.Registry, scraper *scrape.Manager,
	spanLogs storage.SpanLogStore, rules ruleSet, dial func(ctx context.Context, network, address string) (net.Conn, error),
) error {
	c, err := snapshot.New(snapshot.Options{
		Dir:      filepath.Join(dataDir, "snapshots"),
		Registry: instances, Targets: scraper, Traces: spanLogs, Logs: spanLogs,
		Alerts: func() []snapshot.Alert { return firingAlerts(rules) },
		Client: &http.Client{
			Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true},
			// An instance's redirect is its answer, not followed.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		NotAllowed: alerting.ErrOutboundRefused,
		Logger:     logger,
	})
	if err != nil {
		return err
	}
	httpapi.Mount(webSrv, snapshot.Routes, c.Handler())
	return nil
}

// firingAlerts lists the alerts the rules hold firing now.
func firingAlerts(rules ruleSet) []snapshot.Alert {
	var out []snapshot.Alert
	for _, r := range rules.AlertingRules() {
		for _, a := range r.ActiveAlerts() {
			if a.State != promrules.StateFiring {
				continue
			}
			out = append(out, snapshot.Alert{Labels: a.Labels.Map(), Annotations: a.Annotations.Map(), State: a.State.String(), ActiveAt: a.ActiveAt})
		}
	}
	return out
}
