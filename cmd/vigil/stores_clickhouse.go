package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-observability/vigil/internal/config"
	"github.com/vigil-observability/vigil/internal/storage/clickhouse"
)

// openClickHouse opens the span, log and metric stores in ClickHouse, and
// starts dropping the day partitions retention no longer keeps.
func (s *stores) openClickHouse(ctx context.Context, cfg *config.Config, logger *slog.Logger) error {
	chCfg := cfg.Storage.ClickHouse
	client, err := clickhouse.Connect(ctx, clickhouse.Options{
		DSN: chCfg.DSN, Database: chCfg.Database, Cluster: chCfg.Cluster,
		Logger: logger.With("component", "clickhouse"),
	})
	if err != nil {
		return fmt.Errorf("open clickhouse: %w", err)
	}
	s.closers = append(s.closers, client.Close)
	node := nodeName(cfg.HTTPAddr)
	s.external = labels.FromStrings("vigil_node", node)
	logger.Info("clickhouse connected", "version", client.Features.Version, "database", client.Database, "cluster", client.Cluster, "node", node)
	sl, err := clickhouse.OpenSpanLogs(ctx, client, clickhouse.SpanLogOptions{
		MaxFutureSkew: cfg.IngestLimits().MaxFutureSkew,
	})
	if err != nil {
		return fmt.Errorf("open clickhouse span and log store: %w", err)
	}
	s.spanLogs = sl
	s.closers = append(s.closers, sl.Close)
	ms, err := clickhouse.OpenMetrics(ctx, client, clickhouse.MetricsOptions{})
	if err != nil {
		return fmt.Errorf("open clickhouse metric store: %w", err)
	}
	s.metrics = ms // it holds nothing of its own: closing the client ends it

	// Every node may drop old partitions: dropping one that another node
	// dropped already is a no-op.
	retention := time.Duration(cfg.Retention)
	retCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Hour)
		defer t.Stop()
		for {
			before := time.Now().Add(-retention)
			for name, r := range map[string]interface {
				DropBefore(context.Context, time.Time) (int, error)
			}{"spans and logs": sl, "metrics": ms} {
				if n, err := r.DropBefore(retCtx, before); err != nil {
					logger.Warn("clickhouse retention", "store", name, "err", err)
				} else if n > 0 {
					logger.Info("clickhouse retention dropped partitions", "store", name, "partitions", n)
				}
			}
			select {
			case <-retCtx.Done():
				return
			case <-t.C:
			}
		}
	}()
	s.closers = append(s.closers, func() error { stop(); <-done; return nil })
	return nil
}

// nodeName tells this process apart from the others sharing the store:
// the host's name and the HTTP port.
func nodeName(httpAddr string) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	if _, port, err := net.SplitHostPort(httpAddr); err == nil {
		return host + ":" + port
	}
	return host
}
