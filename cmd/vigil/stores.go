package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-observability/vigil/internal/config"
	"github.com/vigil-observability/vigil/internal/memlimit"
	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/embedded"
)

// stores are the opened backends.
type stores struct {
	metrics storage.MetricStore
	// metricCaps are what the metric backend offers beyond appending and
	// querying (the embedded TSDB's exemplars, head and status pages),
	// resolved once here; each is nil on a backend without it.
	metricCaps storage.MetricCapabilities
	spanLogs   storage.SpanLogStore
	profiles   storage.ProfileStore
	// external labels every series vigil derives itself carries: on a
	// shared store, the node that counted it.
	external labels.Labels
	// closers run in reverse order by close.
	closers []func() error
	logger  *slog.Logger
}

// openStores opens the configured backend.
func openStores(ctx context.Context, cfg *config.Config, logger *slog.Logger, reg prometheus.Registerer) (*stores, error) {
	s := &stores{logger: logger}
	start := time.Now()
	retention := time.Duration(cfg.Retention)
	switch cfg.Storage.Backend {
	case config.BackendClickHouse:
		if err := s.openClickHouse(ctx, cfg, logger); err != nil {
			s.close()
			return nil, err
		}
	default:
		db, err := embedded.OpenMetrics(embedded.MetricsOptions{
			Dir: filepath.Join(cfg.DataDir, "tsdb"), Retention: retention,
			QuarantineDir: filepath.Join(cfg.DataDir, "quarantine"),
			Logger:        logger, Registerer: reg,
		})
		if err != nil {
			return nil, fmt.Errorf("open metrics store: %w", err)
		}
		s.closers = append(s.closers, db.Close)
		// Appends go through the disk guard: below the free-space reserve
		// they are refused (503) instead of failing half way on ENOSPC.
		guarded, err := embedded.GuardMetrics(db, embedded.GuardMetricsOptions{
			Dir: filepath.Join(cfg.DataDir, "tsdb"), Logger: logger.With("component", "tsdb"), Registerer: reg,
		})
		if err != nil {
			s.close()
			return nil, fmt.Errorf("open metrics store: %w", err)
		}
		s.metrics = guarded
		sl, err := embedded.OpenSpanLogStore(ctx, embedded.SpanLogOptions{
			Dir: filepath.Join(cfg.DataDir, "spanlogs"), Retention: retention,
			MemoryLimit:      cfg.Storage.DuckDBMemoryLimit,
			RecentTraceBytes: recentTraceBytes(cfg),
			QuarantineDir:    filepath.Join(cfg.DataDir, "quarantine"),
			Logger:           logger.With("component", "duckdb"), Registerer: reg,
		})
		if err != nil {
			s.close()
			return nil, fmt.Errorf("open span and log store: %w", err)
		}
		s.spanLogs = sl
		s.closers = append(s.closers, sl.Close)
	}
	if s.profiles == nil {
		prof, err := embedded.OpenProfileStore(ctx, embedded.ProfileOptions{
			Dir: filepath.Join(cfg.DataDir, "profiles"), Retention: retention,
			Logger: logger.With("component", "profiles"), Registerer: reg,
		})
		if err != nil {
			s.close()
			return nil, fmt.Errorf("open profile store: %w", err)
		}
		s.profiles = prof
		s.closers = append(s.closers, prof.Close)
	}
	s.metricCaps = storage.CapabilitiesOf(s.metrics)
	logger.Info("storage open", "backend", cfg.Storage.Backend, "dir", cfg.DataDir, "took", time.Since(start).Round(time.Millisecond).String())
	return s, nil
}

// close closes the stores, the last opened first.
func (s *stores) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		if err := s.closers[i](); err != nil {
			s.logger.Error("close storage", "err", err)
		}
	}
	s.closers = nil
}

// recentTraceBytes sizes the embedded store's recent traces: the default,
// or under limits.memory_limit at most a sixteenth of the Go heap's share
// of it, so that a small cap is not spent on them.
func recentTraceBytes(cfg *config.Config) int64 {
	if cfg.Limits.MemoryLimit <= 0 {
		return 0 // the store's default
	}
	duck, err := cfg.DuckDBMemoryBytes()
	if err != nil {
		return 0 // refused with the memory guard
	}
	share := (int64(cfg.Limits.MemoryLimit) - duck) / 16
	if share <= 0 {
		return -1 // none
	}
	return min(share, embedded.DefaultRecentTraceBytes)
}

// newMemoryGuard applies limits.memory_limit: DuckDB's buffer pool, when
// vigil runs one, is reserved out of it. nil without a limit.
func newMemoryGuard(cfg *config.Config, logger *slog.Logger, reg prometheus.Registerer) (*memlimit.Guard, error) {
	if cfg.Limits.MemoryLimit <= 0 {
		return nil, nil
	}
	var reserved int64
	if cfg.Storage.Backend != config.BackendClickHouse {
		b, err := cfg.DuckDBMemoryBytes()
		if err != nil {
			return nil, err
		}
		reserved = b
	}
	g := memlimit.New(memlimit.Options{
		Limit: int64(cfg.Limits.MemoryLimit), Reserved: reserved,
		Logger: logger.With("component", "memlimit"), Registerer: reg,
	})
	logger.Info("memory limit", "limit", cfg.Limits.MemoryLimit.String(), "duckdb", cfg.Storage.DuckDBMemoryLimit, "go_soft_limit_bytes", g.GoLimit())
	return g, nil
}
