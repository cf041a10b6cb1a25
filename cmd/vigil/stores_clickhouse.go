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
	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/clickhouse"
)

// openClickHouse opens the span, log, metric and profile stores in ClickHouse, and
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
	node := nodeName(cfg)
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
	prof, err := clickhouse.OpenProfiles(ctx, client, time.Duration(cfg.Retention))
	if err != nil {
		return fmt.Errorf("open clickhouse profile store: %w", err)
	}
	s.profiles = prof

	// The tables have no TTL (old servers have none), so vigil drops old
	// partitions itself.
	retCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		runRetention(retCtx, retentionOptions{
			Retainers: map[string]storage.Retainer{"spans and logs": sl, "metrics": ms, "profiles": prof},
			Keep:      time.Duration(cfg.Retention),
			Logger:    logger.With("component", "clickhouse"),
		})
	}()
	s.closers = append(s.closers, func() error { stop(); <-done; return nil })
	return nil
}

// nodeName tells this process apart from the others sharing the store:
// in a cluster its node id, which stays when the node moves (and which
// /api/v1/cluster lists), otherwise the host's name and the HTTP port.
func nodeName(cfg *config.Config) string {
	if cfg.Cluster != nil && cfg.Cluster.NodeID != "" {
		return cfg.Cluster.NodeID
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	if _, port, err := net.SplitHostPort(cfg.HTTPAddr); err == nil {
		return host + ":" + port
	}
	return host
}
