// Package rules evaluates Prometheus recording and alerting rules against
// vigil's metric store with Prometheus's own rules manager, so rule files
// mean exactly what they mean to Prometheus. Rules vigil generates itself
// (SLOs) are written as one more rule file under the data directory, where
// a person can read what runs.
package rules

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	promrules "github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
	"gopkg.in/yaml.v3"

	"github.com/vigil-observability/vigil/internal/query/querylimit"
)

// ErrInvalidRules wraps every rule file that does not validate; nothing of
// a configuration with such a file is applied.
var ErrInvalidRules = errors.New("invalid rules")

// Defaults of Options.
const (
	// DefaultOutageTolerance is how long vigil may have been down for an
	// alert's "for" progress to be restored from ALERTS_FOR_STATE, as in
	// Prometheus.
	DefaultOutageTolerance = time.Hour
	// DefaultForGracePeriod is the least time a restored alert waits before
	// firing again, as in Prometheus.
	DefaultForGracePeriod = 10 * time.Minute
	// DefaultResendDelay is how often firing alerts are sent again.
	DefaultResendDelay = time.Minute
	generatedFile      = "generated.rules.yml"
)

// Options configures a Manager.
type Options struct {
	// Appendable receives recording rule results and ALERTS series;
	// Queryable is what the rules read. Both are the metric store.
	// Required.
	Appendable storage.AppendableV2
	Queryable  storage.Queryable
	// Notify receives firing and resolved alerts (the Alertmanager); nil
	// drops them (rules still evaluate and /api/v1/alerts shows them).
	Notify promrules.NotifyFunc
	// Dir holds the rule file of generated groups. Required.
	Dir string
	// ExternalURL is where vigil is reached: rule templates read it as
	// $externalURL. Alerts' generator URLs are made by Notify, on the same
	// URL. Required.
	ExternalURL *url.URL
	Logger      *slog.Logger
	Registerer  prometheus.Registerer
	// Metrics, when set, are the rule group metrics to use instead of
	// registering new ones with Registerer: a process that builds a
	// Manager more than once (a cluster's leader, one per term it leads)
	// shares one set, which a registry takes only once.
	Metrics *promrules.Metrics
	// Engine evaluates the rules: the process's one engine, so that rules
	// and users share its limits and query slots (one memory budget), and
	// a subquery without a step uses the global evaluation interval the
	// engine was built with, as in Prometheus. Required.
	Engine *querylimit.Engine
}

// Manager runs the rule groups of a configuration.
type Manager struct {
	*promrules.Manager
	dir      string
	logger   *slog.Logger
	url      string
	mu       sync.Mutex
	stopping atomic.Bool
	cancel   context.CancelFunc // ends evaluations in flight
}

// New returns a Manager; call Apply with the rules, then Run. It panics
// if Options.Appendable, Queryable, Dir, Engine or ExternalURL is unset, a
// wiring mistake.
func New(opts Options) (*Manager, error) {
	if opts.Appendable == nil || opts.Queryable == nil || opts.Dir == "" || opts.Engine == nil || opts.ExternalURL == nil {
		panic("rules: Options.Appendable, Queryable, Dir, Engine and ExternalURL are required")
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	m := &Manager{dir: opts.Dir, logger: logger}
	notify := opts.Notify
	if notify == nil {
		notify = func(context.Context, string, ...*promrules.Alert) {}
	}
	// Evaluations run under a context Stop cancels: a slow rule query
	// would otherwise hold a stop for up to the engine's timeout.
	ctx, cancel := context.WithCancel(context.Background())
	m.Manager = promrules.NewManager(&promrules.ManagerOptions{
		ExternalURL:     opts.ExternalURL,
		QueryFunc:       promrules.EngineQueryFunc(opts.Engine, opts.Queryable),
		NotifyFunc:      notify,
		Context:         ctx,
		Appendable:      v1Appendable{opts.Appendable},
		Queryable:       opts.Queryable,
		Logger:          logger.With("component", "rules"),
		Registerer:      opts.Registerer,
		Metrics:         opts.Metrics,
		OutageTolerance: DefaultOutageTolerance,
		ForGracePeriod:  DefaultForGracePeriod,
		ResendDelay:     DefaultResendDelay,
	})
	m.url = opts.ExternalURL.String()
	m.cancel = cancel
	return m, nil
}

// Config is what a (re)load applies.
type Config struct {
	// Interval is the default evaluation interval (global.evaluation_interval).
	Interval time.Duration
	// Files are rule files, already resolved and expanded from globs.
	Files []string
	// Generated are groups vigil made (SLOs); written to Dir as a rule file.
	Generated []rulefmt.RuleGroup
	// ExternalLabels are added to alerts, as in Prometheus.
	ExternalLabels labels.Labels
}

// Validate checks every file with Prometheus's rule file parser and
// returns all problems, each naming its file.
func Validate(files []string, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var errs []error
	for _, f := range files {
		_, perrs := rulefmt.ParseFile(f, false, model.UTF8Validation, parser.NewParser(parser.Options{}), logger)
		for _, e := range perrs {
			errs = append(errs, fmt.Errorf("%w: %w", ErrInvalidRules, e))
		}
	}
	return errors.Join(errs...)
}

// Apply validates and loads c, replacing the running groups. On error the
// previous rules keep running.
func (m *Manager) Apply(c Config) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	files := slices.Clone(c.Files)
	gen := filepath.Join(m.dir, generatedFile)
	if len(c.Generated) > 0 {
		data, err := yaml.Marshal(rulefmt.RuleGroups{Groups: c.Generated})
		if err != nil {
			return fmt.Errorf("rules: encode generated rules: %w", err)
		}
		tmp := gen + ".tmp"
		if err := os.WriteFile(tmp, data, 0o644); err != nil {
			return fmt.Errorf("rules: %w", err)
		}
		if err := Validate([]string{tmp}, m.logger); err != nil {
			return fmt.Errorf("generated rules: %w", err)
		}
		if err := os.Rename(tmp, gen); err != nil {
			return fmt.Errorf("rules: %w", err)
		}
		files = append(files, gen)
	} else if err := os.Remove(gen); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("rules: %w", err)
	}
	if err := Validate(c.Files, m.logger); err != nil {
		return err
	}
	if err := m.Update(c.Interval, files, c.ExternalLabels, m.url, nil); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidRules, err)
	}
	m.logger.Info("rules loaded", "files", len(files), "groups", len(m.RuleGroups()))
	return nil
}

// Stop stops evaluation, cancelling the queries of evaluations in flight,
// and returns once they have ended. Calls after the first return at once,
// even while the first still waits: a stop that gave up waiting (its
// shutdown budget spent) must not be held up by a later one.
func (m *Manager) Stop() {
	if !m.stopping.CompareAndSwap(false, true) {
		return
	}
	m.cancel()
	m.Manager.Stop()
}
