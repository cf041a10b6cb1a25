package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/vigil-observability/vigil/internal/config"
	"github.com/vigil-observability/vigil/internal/ingest/gate"
	"github.com/vigil-observability/vigil/internal/lifecycle"
	"github.com/vigil-observability/vigil/internal/rules"
	"github.com/vigil-observability/vigil/internal/shutdown"
)

// The stages of the server's stop, in order (docs/architecture.md, "Start-up
// and shutdown"). Acknowledgements stop first, so nothing is acknowledged
// that the drain might not store; the listeners then get their share of the
// budget to let requests in flight finish, after which stalled clients are
// cut off (unacknowledged: they retry); what produces data stops; the write
// queues drain in what is left of the budget; then what the drained data
// feeds flushes, and storage closes last.
const (
	stageIngest    = "ingest"    // refuse ingest; stop reloading the configuration
	stageListeners = "listeners" // within two thirds of shutdown_timeout
	stageScrape    = "scrape"    // no new samples from targets
	stageDrain     = "drain"     // within the whole shutdown_timeout
	stageFlush     = "flush"     // the span metrics' last flush into the TSDB
	stageAlerting  = "alerting"  // after the rules' last notifications
	stageConsensus = "consensus" // after the Alertmanager's last notification log entries
	stageStorage   = "storage"   // last
)

// newServerGroup is the group serve runs its components in.
func newServerGroup(cfg *config.Config, logger *slog.Logger) *lifecycle.Group {
	return lifecycle.NewGroup(lifecycle.Options{
		Stages: []lifecycle.Stage{
			{Name: stageIngest},
			{Name: stageListeners, Share: shutdown.ListenersShare},
			{Name: stageScrape},
			{Name: stageDrain, Share: 1},
			{Name: stageFlush},
			{Name: stageAlerting},
			{Name: stageConsensus},
			{Name: stageStorage},
		},
		Budget: time.Duration(cfg.ShutdownTimeout),
		Logger: logger,
	})
}

// refuseIngest closes the gate when the stop begins: from then on every
// receiver answers "retry later", and /-/ready says the server is going.
// It notes when in began, for drained.
func refuseIngest(cfg *config.Config, logger *slog.Logger, web interface{ SetStopping() }, g *gate.Gate, began *time.Time) lifecycle.Component {
	return lifecycle.OnStop(func(context.Context) error {
		*began = time.Now()
		web.SetStopping()
		g.Close()
		logger.Info("ingest refused from now on; stopping the listeners", "shutdown_timeout", cfg.ShutdownTimeout)
		return nil
	})
}

// listenerForced is logged by a listener that had to close connections at
// its deadline.
func listenerForced(cfg *config.Config, logger *slog.Logger, err error) {
	logger.Warn("connections still open at the listeners' shutdown deadline were closed: their requests (stalled uploads, slow queries) got no answer, and nothing they sent was acknowledged, so senders retry it",
		"err", err, "shutdown_timeout", cfg.ShutdownTimeout)
}

// httpListener serves s on ln until the stop, then shuts it down: requests
// in flight finish until the stop's deadline, then their connections close.
func httpListener(cfg *config.Config, logger *slog.Logger, name string, s *http.Server, ln net.Listener) lifecycle.Component {
	return lifecycle.Serve(func() error { return serveHTTP(s, ln, name) }, func(ctx context.Context) error {
		if err := shutdown.HTTP(ctx, name, s); err != nil {
			listenerForced(cfg, logger, err)
		}
		return nil
	})
}

// grpcListener is httpListener for the OTLP/gRPC server.
func grpcListener(cfg *config.Config, logger *slog.Logger, s interface {
	shutdown.GRPCServer
	Serve(net.Listener) error
}, ln net.Listener) lifecycle.Component {
	return lifecycle.Serve(func() error {
		if err := s.Serve(ln); err != nil {
			return fmt.Errorf("otlp grpc: %w", err)
		}
		return nil
	}, func(ctx context.Context) error {
		if err := shutdown.GRPC(ctx, s); err != nil {
			listenerForced(cfg, logger, err)
		}
		return nil
	})
}

// drainQueue drains a write queue when the stop comes, within the stop's
// deadline.
func drainQueue(cfg *config.Config, logger *slog.Logger, name string, q interface{ Close(context.Context) error }) lifecycle.Component {
	return lifecycle.OnStop(func(ctx context.Context) error {
		if err := q.Close(ctx); err != nil {
			// A request is acknowledged only once its batch is durable, so
			// what was left in the queue was never acknowledged.
			logger.Warn("shutdown_timeout ended before the write queue drained; its remaining requests were never acknowledged and their senders will retry them",
				"queue", name, "err", err, "shutdown_timeout", cfg.ShutdownTimeout)
		}
		return nil
	})
}

// runRules evaluates rules until the stop. Stopping cancels evaluations in
// flight, but the engine notices only between series: one slow series may
// outlast the budget, and its result is not worth holding the stop for.
func runRules(cfg *config.Config, logger *slog.Logger, m *rules.Manager) lifecycle.Component {
	return lifecycle.Func(func(ctx context.Context) error {
		ran := make(chan struct{})
		go func() {
			defer close(ran)
			m.Run()
		}()
		<-ctx.Done()
		if err := shutdown.Wait(lifecycle.StopContext(ctx), "rules", m.Stop); err != nil {
			logger.Warn("a rule evaluation was still running at the shutdown deadline; its result is dropped and the rule evaluates again after the restart",
				"err", err, "shutdown_timeout", cfg.ShutdownTimeout)
			return nil
		}
		<-ran // returns once Stop has
		return nil
	})
}

// drained logs the end of the stop's bounded part, in the stage after it:
// from here on only what must not be cut short (final flushes, storage)
// runs. began is set by refuseIngest, stages earlier.
func drained(logger *slog.Logger, began *time.Time) lifecycle.Component {
	return lifecycle.OnStop(func(context.Context) error {
		logger.Info("listeners stopped and queues drained", "took", time.Since(*began).Round(time.Millisecond).String())
		return nil
	})
}
