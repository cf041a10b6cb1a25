// Package scrape pulls metrics from Prometheus targets. It runs Prometheus's
// own service-discovery manager and scrape manager, wired the way the
// Prometheus server wires them, so target selection, relabelling,
// authentication and the synthetic series (up, scrape_duration_seconds,
// scrape_samples_scraped, scrape_samples_post_metric_relabeling,
// scrape_series_added) behave exactly as in Prometheus.
package scrape

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	promscrape "github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/storage"

	// Every service-discovery mechanism registers its configuration type
	// here; without it config.Load rejects e.g. kubernetes_sd_configs, and
	// the discovery manager could not start the providers.
	_ "github.com/prometheus/prometheus/discovery/install"
)

// DefaultDiscoveryUpdateInterval is how often, at most, discovered target
// changes are handed to the scrape manager. It is Prometheus's default.
const DefaultDiscoveryUpdateInterval = 5 * time.Second

// Options configure a Manager.
type Options struct {
	// Appendable receives the scraped samples. A *tsdb.DB satisfies it; it
	// is the appender interface the Prometheus server itself hands its
	// scrape manager.
	Appendable storage.AppendableV2
	// Writing, when set, lets a scrape's samples reach Appendable only
	// while it reports true: several nodes of a cluster scrape the same
	// targets into one shared store, where two writers of a series would
	// double its samples and one node's staleness markers would hide the
	// other's samples. Each node still scrapes (its targets' health, the
	// doctor) and one node writes. Nil writes always.
	Writing func() bool
	// Own, with Writing, names the targets this node alone scrapes (the
	// instances registered with its registry, which no other node
	// knows): their samples are written whatever Writing says, or they
	// would reach the shared store only when registered with the writing
	// node. Each is still one writer's, as only this node scrapes it.
	Own func(*promscrape.Target) bool
	// Logger may be nil (logs are discarded).
	Logger *slog.Logger
	// Registerer receives the discovery and scrape managers' metrics
	// (prometheus_sd_*, prometheus_target_*). It may be nil in tests; the
	// metrics are then kept in a private registry.
	Registerer prometheus.Registerer
	// SDMetrics are the service discovery mechanisms' metrics, which a
	// registry holds once: share them with any other discovery manager
	// (the profile scraper's). Nil: registered on Registerer here.
	SDMetrics *discovery.SDMetrics
	// DiscoveryUpdateInterval throttles how often target changes from
	// discovery reach the scrape pools. Zero means
	// DefaultDiscoveryUpdateInterval. Tests use a short value so that file
	// SD changes are picked up quickly.
	DiscoveryUpdateInterval time.Duration
	// ImplicitJobs are added to every configuration's scrape_configs, with
	// Prometheus's defaults and the global section's interval and timeout;
	// a job of the configuration with the same name replaces one. vigil's
	// registry feeds one (docs/registry.md).
	ImplicitJobs []ImplicitJob
}

// ImplicitJob is a scrape job no configuration names: its targets come
// from Discovery.
type ImplicitJob struct {
	Name      string
	Discovery discovery.Config
}

// Manager runs service discovery and scraping for the scrape_configs of a
// Prometheus-format configuration.
type Manager struct {
	implicit  []ImplicitJob
	logger    *slog.Logger
	discovery *discovery.Manager
	scrape    *promscrape.Manager

	ctx    context.Context
	cancel context.CancelFunc

	// configured is closed by the first successful ApplyConfig. Like the
	// Prometheus server, scraping only starts once a configuration is
	// known, otherwise discovered target sets would have no job config.
	configured     chan struct{}
	configuredOnce sync.Once
	stopOnce       sync.Once
	// applyMu serialises ApplyConfig so the scrape and discovery managers
	// always see the same configuration generation.
	applyMu sync.Mutex
}

// New builds a Manager. Nothing is scraped until ApplyConfig and Run are
// called. It panics if opts.Appendable is nil, a wiring mistake that no
// configuration can fix.
func New(opts Options) (*Manager, error) {
	if opts.Appendable == nil {
		panic("scrape: Options.Appendable is required")
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	reg := opts.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	interval := opts.DiscoveryUpdateInterval
	if interval <= 0 {
		interval = DefaultDiscoveryUpdateInterval
	}

	sdMetrics := opts.SDMetrics
	if sdMetrics == nil {
		var err error
		if sdMetrics, err = discovery.CreateAndRegisterSDMetrics(reg); err != nil {
			return nil, fmt.Errorf("scrape: registering service discovery metrics: %w", err)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	dm := discovery.NewManager(ctx, logger.With("component", "discovery manager scrape"), reg, sdMetrics,
		discovery.Name("scrape"), discovery.Updatert(interval))
	if dm == nil {
		// discovery.NewManager logs the cause and returns nil; the usual one
		// is a metrics registration conflict.
		cancel()
		return nil, errors.New("scrape: creating discovery manager failed (see log; metrics already registered?)")
	}

	sm, err := promscrape.NewManager(
		// The target in the appender's context tells Own's targets apart.
		&promscrape.Options{DiscoveryReloadInterval: model.Duration(interval), PassMetadataInContext: opts.Writing != nil && opts.Own != nil},
		logger.With("component", "scrape manager"),
		nil, // No per-job scrape failure log files.
		nil, whileWriting(opts.Appendable, opts.Writing, opts.Own),
		reg,
	)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("scrape: creating scrape manager: %w", err)
	}

	return &Manager{
		implicit:   opts.ImplicitJobs,
		logger:     logger,
		discovery:  dm,
		scrape:     sm,
		ctx:        ctx,
		cancel:     cancel,
		configured: make(chan struct{}),
	}, nil
}

// ApplyConfig installs a new configuration: its global section and
// scrape_configs (including scrape_config_files). It may be called at any
// time, before or after Run. The scrape manager is updated before discovery,
// as in Prometheus, so that newly discovered targets always find their job.
func (m *Manager) ApplyConfig(cfg *config.Config) error {
	if cfg == nil {
		return errors.New("scrape: nil configuration")
	}
	m.applyMu.Lock()
	defer m.applyMu.Unlock()

	cfg, err := m.withImplicit(cfg)
	if err != nil {
		return err
	}
	if err := m.scrape.ApplyConfig(cfg); err != nil {
		return fmt.Errorf("scrape: applying scrape configuration: %w", err)
	}
	scfgs, err := cfg.GetScrapeConfigs()
	if err != nil {
		return fmt.Errorf("scrape: loading scrape configs: %w", err)
	}
	sd := make(map[string]discovery.Configs, len(scfgs))
	for _, sc := range scfgs {
		sd[sc.JobName] = sc.ServiceDiscoveryConfigs
	}
	if err := m.discovery.ApplyConfig(sd); err != nil {
		return fmt.Errorf("scrape: applying discovery configuration: %w", err)
	}
	m.configuredOnce.Do(func() { close(m.configured) })
	return nil
}

// withImplicit returns cfg with the implicit jobs its scrape_configs do
// not name appended (a shallow copy; cfg is not changed).
func (m *Manager) withImplicit(cfg *config.Config) (*config.Config, error) {
	if len(m.implicit) == 0 {
		return cfg, nil
	}
	scfgs, err := cfg.GetScrapeConfigs()
	if err != nil {
		return nil, fmt.Errorf("scrape: loading scrape configs: %w", err)
	}
	c := *cfg
	c.ScrapeConfigs = slices.Clone(cfg.ScrapeConfigs)
	for _, j := range m.implicit {
		if slices.ContainsFunc(scfgs, func(sc *config.ScrapeConfig) bool { return sc.JobName == j.Name }) {
			continue
		}
		sc := config.DefaultScrapeConfig
		sc.JobName = j.Name
		sc.ServiceDiscoveryConfigs = discovery.Configs{j.Discovery}
		if err := sc.Validate(cfg.GlobalConfig); err != nil {
			return nil, fmt.Errorf("scrape: implicit job %s: %w", j.Name, err)
		}
		c.ScrapeConfigs = append(c.ScrapeConfigs, &sc)
	}
	return &c, nil
}

// Run discovers and scrapes targets until Stop is called. It waits for the
// first ApplyConfig before starting.
func (m *Manager) Run() error {
	select {
	case <-m.configured:
	case <-m.ctx.Done():
		return nil
	}

	var wg sync.WaitGroup
	var scrapeErr error
	wg.Go(func() {
		// Returns context.Canceled once Stop cancels the context.
		_ = m.discovery.Run()
	})
	wg.Go(func() {
		scrapeErr = m.scrape.Run(m.discovery.SyncCh())
	})
	<-m.ctx.Done()
	wg.Wait()
	if scrapeErr != nil {
		return fmt.Errorf("scrape: scrape manager: %w", scrapeErr)
	}
	return nil
}

// Stop ends discovery and all scrape loops, waiting for the loops to exit so
// that nothing is appended afterwards (the storage can then be closed). It
// is safe to call more than once and without Run.
func (m *Manager) Stop() {
	m.stopOnce.Do(func() {
		m.cancel()
		m.scrape.Stop()
	})
}

// TargetsActive returns the targets being scraped, by scrape pool (job).
func (m *Manager) TargetsActive() map[string][]*promscrape.Target {
	return m.scrape.TargetsActive()
}

// TargetsDropped returns the targets dropped by relabelling, by scrape pool,
// subject to each job's keep_dropped_targets limit.
func (m *Manager) TargetsDropped() map[string][]*promscrape.Target {
	return m.scrape.TargetsDropped()
}

// TargetsDroppedCounts returns how many targets each scrape pool dropped,
// including those not kept because of keep_dropped_targets.
func (m *Manager) TargetsDroppedCounts() map[string]int {
	return m.scrape.TargetsDroppedCounts()
}

// ScrapePools returns the names of the running scrape pools.
func (m *Manager) ScrapePools() []string {
	return m.scrape.ScrapePools()
}

// ScrapePoolConfig returns the configuration a scrape pool runs with. The
// error is Prometheus's own, unwrapped, because the HTTP API shows its text.
func (m *Manager) ScrapePoolConfig(pool string) (*config.ScrapeConfig, error) {
	return m.scrape.ScrapePoolConfig(pool)
}

// whileWriting is app, or with writing a gate in front of it that own's
// targets pass.
func whileWriting(app storage.AppendableV2, writing func() bool, own func(*promscrape.Target) bool) storage.AppendableV2 {
	if writing == nil {
		return app
	}
	return gatedAppendable{next: app, writing: writing, own: own}
}

// gatedAppendable decides once per scrape, when the scrape loop asks for
// its appender, so that a scrape is written whole or not at all.
type gatedAppendable struct {
	next    storage.AppendableV2
	writing func() bool
	own     func(*promscrape.Target) bool
}

func (g gatedAppendable) AppenderV2(ctx context.Context) storage.AppenderV2 {
	if g.writing() {
		return g.next.AppenderV2(ctx)
	}
	if g.own != nil {
		if t, ok := promscrape.TargetFromContext(ctx); ok && g.own(t) {
			return g.next.AppenderV2(ctx)
		}
	}
	return discardAppender{}
}

// discardAppender accepts and drops every sample. Its series reference is
// 0, which the scrape loop takes as "unknown": it neither caches a
// reference the real store never issued nor tracks the series for
// staleness markers, so a node that starts writing again begins clean.
type discardAppender struct{}

func (discardAppender) Append(storage.SeriesRef, labels.Labels, int64, int64, float64, *histogram.Histogram, *histogram.FloatHistogram, storage.AppendV2Options) (storage.SeriesRef, error) {
	return 0, nil
}
func (discardAppender) Commit() error   { return nil }
func (discardAppender) Rollback() error { return nil }
