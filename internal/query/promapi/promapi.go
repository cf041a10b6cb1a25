// Package promapi serves the Prometheus HTTP query API (/api/v1/...). It is
// Prometheus's own web/api/v1 handler over Prometheus's PromQL engine, so the
// responses are those of a Prometheus server by construction; this package
// only supplies what the handler needs from vigil (storage, targets, config,
// build information) and switches off what vigil does elsewhere (the
// remote-write and OTLP receivers, which vigil serves itself, and the admin
// endpoints).
package promapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/grafana/regexp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/route"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/util/features"
	"github.com/prometheus/prometheus/util/notifications"
	apiv1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/vigil-observability/vigil/internal/query/querylimit"
)

// DefaultListenAddress is only used to recognise targets that are vigil
// itself when reporting their global URL on /api/v1/targets.
const DefaultListenAddress = "0.0.0.0:9090"

// remoteReadMaxBytesInFrame is Prometheus's flag default; remote read's
// sample and concurrency limits are the query limits.
const remoteReadMaxBytesInFrame = 1 << 20

// effectiveFlags is /status/flags: opts.Flags plus what the handler runs
// with, under Prometheus's flag names. Tools such as Grafana read some of
// them (query.timeout, query.max-samples); an empty object tells them
// nothing.
func effectiveFlags(opts Options, engine *querylimit.Engine, extURL *url.URL) map[string]string {
	lim := engine.Limits()
	flags := make(map[string]string, len(opts.Flags)+10)
	maps.Copy(flags, opts.Flags)
	// What the handler runs with wins over what the caller says.
	maps.Copy(flags, map[string]string{
		"query.timeout":                          model.Duration(lim.Timeout).String(),
		"query.max-samples":                      strconv.Itoa(lim.MaxSamples),
		"query.max-concurrency":                  strconv.Itoa(lim.MaxConcurrency),
		"query.max-series":                       strconv.Itoa(lim.MaxSeries),
		"query.max-response-bytes":               strconv.FormatInt(lim.MaxResponseBytes, 10),
		"query.max-trace-spans":                  strconv.Itoa(lim.MaxTraceSpans),
		"query.lookback-delta":                   model.Duration(engine.LookbackDelta()).String(),
		"web.enable-admin-api":                   strconv.FormatBool(opts.EnableAdmin),
		"web.cors.origin":                        opts.CORSOrigin,
		"web.external-url":                       extURL.String(),
		"storage.remote.read-sample-limit":       strconv.Itoa(lim.MaxSamples),
		"storage.remote.read-concurrent-limit":   strconv.Itoa(lim.MaxConcurrency),
		"storage.remote.read-max-bytes-in-frame": strconv.Itoa(remoteReadMaxBytesInFrame),
	})
	if opts.ListenAddress != "" {
		flags["web.listen-address"] = opts.ListenAddress
	}
	return flags
}

// PathPrefix is where the handler expects to be mounted: it routes requests
// whose path starts with it, e.g. /api/v1/query.
const PathPrefix = "/api/v1"

// ErrNoTSDB is reported by the TSDB status endpoints when Options.TSDB is
// not set.
var ErrNoTSDB = errors.New("TSDB status not available")

// Targets is what the API needs from the scrape manager for /targets,
// /targets/metadata, /scrape_pools and /scrape_pools/config.
// *internal/ingest/scrape.Manager satisfies it.
type Targets interface {
	TargetsActive() map[string][]*scrape.Target
	TargetsDropped() map[string][]*scrape.Target
	TargetsDroppedCounts() map[string]int
	ScrapePoolConfig(pool string) (*config.ScrapeConfig, error)
	ScrapePools() []string
}

// Options configure the API handler.
type Options struct {
	// Queryable is the metric storage the queries read.
	Queryable storage.SampleAndChunkQueryable
	// ExemplarQueryable serves /query_exemplars; nil answers with no
	// exemplars.
	ExemplarQueryable storage.ExemplarQueryable
	// TSDB, if set, backs /status/tsdb, /status/tsdb/blocks and
	// /status/walreplay (vigil's storage.TSDBAdmin); without it they
	// answer with ErrNoTSDB.
	TSDB apiv1.TSDBAdminStats
	// EnableAdmin serves the TSDB admin endpoints (/admin/tsdb/delete_series,
	// clean_tombstones, snapshot) against TSDB; snapshots go under
	// TSDBDir/snapshots. Off, they answer 404 saying how to turn them on.
	EnableAdmin bool
	TSDBDir     string
	// Targets reports scrape targets; nil means vigil scrapes nothing and
	// the target endpoints return empty lists.
	Targets Targets
	// Metadata adds to /metadata the metric metadata kept outside the
	// scrape targets (remote_write, OTLP, derived series); nil serves the
	// targets' alone.
	Metadata MetadataSource
	// Config returns the current Prometheus-format configuration, for
	// /status/config and remote read's external labels; nil means the
	// defaults. (The default subquery step, the global
	// evaluation_interval, is the Engine's.)
	Config func() config.Config
	// Rules serves /rules and /alerts (a *rules.Manager); nil means vigil
	// evaluates no rules and both answer empty lists.
	Rules apiv1.RulesRetriever
	// Flags are shown by /status/flags beside the settings the handler
	// knows itself (query.timeout, query.max-samples, query.lookback-delta,
	// web.listen-address, web.enable-admin-api, web.cors.origin and remote
	// read's limits), under Prometheus's flag names: the caller adds what
	// it configures (e.g. storage.tsdb.retention.time). Values are strings,
	// as Prometheus shows them.
	Flags map[string]string
	// CORSOrigin is the regular expression (anchored at both ends, as
	// Prometheus's --web.cors.origin) of the origins the API sends CORS
	// headers for; empty matches none. vigil's HTTP listener applies its
	// own policy on top (internal/web.Browsers); Prometheus's handler
	// needs one all the same, since it reads it on every request that
	// carries an Origin header.
	CORSOrigin string

	// Engine evaluates the queries: the process's one engine, shared with
	// rules, RED and the doctor. Its limits also bound remote read and the
	// endpoints that read storage without it, which run under its slots;
	// /status/flags shows its settings. Required.
	Engine *querylimit.Engine

	// ListenAddress and ExternalURL are how vigil is reached; the targets
	// endpoint uses them to compute a target's globalUrl, /status/flags
	// shows them. Empty ListenAddress means DefaultListenAddress.
	// ExternalURL is required: the one vigil's other links start with.
	ListenAddress string
	ExternalURL   *url.URL

	// Logger may be nil (logs are discarded).
	Logger *slog.Logger
	// Registerer receives the API's and remote read's metrics (the engine
	// registers its own where it was built); nil keeps them in a private
	// registry.
	Registerer prometheus.Registerer
	// Gatherer is exposed by /status/self_metrics; nil uses Registerer if
	// it is a Gatherer, otherwise an empty registry.
	Gatherer prometheus.Gatherer

	// Build information for /status/buildinfo.
	Version, Revision, Branch, BuildUser, BuildDate, GoVersion string

	// Ready reports whether vigil is ready to serve queries; while it
	// returns false every endpoint answers 503. Nil means always ready.
	Ready func() bool
}

// ErrRegistration is returned by New when the handler's metrics cannot be
// registered, typically because New was already called with the same
// Registerer.
var ErrRegistration = errors.New("promapi: registering metrics")

// New builds the /api/v1 handler. Call it once per Registerer: the
// remote-read metrics it registers have fixed names. It panics if
// Options.Queryable, Engine or ExternalURL is nil, a wiring mistake.
func New(opts Options) (h http.Handler, err error) {
	switch {
	case opts.Queryable == nil:
		panic("promapi: Options.Queryable is required")
	case opts.Engine == nil:
		panic("promapi: Options.Engine is required")
	case opts.ExternalURL == nil:
		panic("promapi: Options.ExternalURL is required")
	}
	// Prometheus's constructors register their metrics with MustRegister;
	// a conflict must reach the caller as an error, not crash vigil.
	defer func() {
		if r := recover(); r != nil {
			h, err = nil, fmt.Errorf("%w: %v", ErrRegistration, r)
		}
	}()

	extURL := opts.ExternalURL
	engine := opts.Engine
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	reg := opts.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	gatherer := opts.Gatherer
	if gatherer == nil {
		if g, ok := reg.(prometheus.Gatherer); ok {
			gatherer = g
		} else {
			gatherer = prometheus.NewRegistry()
		}
	}
	cfgFunc := opts.Config
	if cfgFunc == nil {
		cfgFunc = func() config.Config { return config.DefaultConfig }
	}
	listen := opts.ListenAddress
	if listen == "" {
		listen = DefaultListenAddress
	}
	lim := engine.Limits()
	flags := effectiveFlags(opts, engine, extURL)
	corsOrigin, err := regexp.Compile("^(?:" + opts.CORSOrigin + ")$")
	if err != nil {
		return nil, fmt.Errorf("promapi: CORS origin %q: %w", opts.CORSOrigin, err)
	}
	var targets Targets = noTargets{}
	if opts.Targets != nil {
		targets = opts.Targets
	}

	featureReg := engine.Features()
	promParser := engine.Parser()
	// Every read of the API counts the series it selects against the
	// request's budget (the engine's queries, /series, remote read).
	queryable := querylimit.LimitSeries(opts.Queryable)

	start := time.Now()
	cwd, _ := os.Getwd() // Informational only (/status/runtimeinfo).
	runtimeInfo := func() (apiv1.RuntimeInfo, error) {
		info := apiv1.RuntimeInfo{
			StartTime:           start,
			CWD:                 cwd,
			ServerTime:          time.Now().UTC(),
			ReloadConfigSuccess: true,
			GoroutineCount:      runtime.NumGoroutine(),
			GOMAXPROCS:          runtime.GOMAXPROCS(0),
			GOMEMLIMIT:          debug.SetMemoryLimit(-1),
			GOGC:                os.Getenv("GOGC"),
			GODEBUG:             os.Getenv("GODEBUG"),
		}
		host, err := os.Hostname()
		if err != nil {
			return info, fmt.Errorf("error getting hostname: %w", err)
		}
		info.Hostname = host
		return info, nil
	}

	ready := func(f http.HandlerFunc) http.HandlerFunc {
		if opts.Ready == nil {
			return f
		}
		return func(w http.ResponseWriter, r *http.Request) {
			if !opts.Ready() {
				// The same answer as a Prometheus server that is not ready.
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprint(w, "Service Unavailable")
				return
			}
			f(w, r)
		}
	}

	var exemplars storage.ExemplarQueryable = noExemplars{}
	if opts.ExemplarQueryable != nil {
		exemplars = opts.ExemplarQueryable
	}
	var adminStats apiv1.TSDBAdminStats = noTSDB{}
	if opts.TSDB != nil {
		adminStats = opts.TSDB
	}

	api := apiv1.NewAPI(
		engine,
		queryable,
		nil, nil, // No appenders: the write receivers are off.
		exemplars,
		func(context.Context) apiv1.ScrapePoolsRetriever { return targets },
		func(context.Context) apiv1.TargetRetriever { return targets },
		func(context.Context) apiv1.AlertmanagerRetriever { return noAlertmanagers{} },
		cfgFunc,
		flags,
		apiv1.GlobalURLOptions{ListenAddress: listen, Host: extURL.Host, Scheme: extURL.Scheme},
		ready,
		adminStats,
		opts.TSDBDir, // Only the admin snapshot endpoint uses it.
		opts.EnableAdmin,
		false, // Experimental search endpoints off.
		0,
		logger.With("component", "api"),
		func(context.Context) apiv1.RulesRetriever { return rulesOf(opts.Rules) },
		lim.MaxSamples,
		lim.MaxConcurrency,
		remoteReadMaxBytesInFrame,
		false, // Not an agent.
		corsOrigin,
		runtimeInfo,
		&apiv1.PrometheusVersion{
			Version:   opts.Version,
			Revision:  opts.Revision,
			Branch:    opts.Branch,
			BuildUser: opts.BuildUser,
			BuildDate: opts.BuildDate,
			GoVersion: opts.GoVersion,
		},
		func() []notifications.Notification { return nil },
		func() (<-chan notifications.Notification, func(), bool) { return nil, func() {}, false },
		gatherer,
		reg,
		nil,        // Default stats renderer.
		false, nil, // Remote-write receiver off: vigil has its own.
		false, false, false, // OTLP receiver off: vigil has its own.
		false, // No start-timestamp zero ingestion (no writes here).
		engine.LookbackDelta(),
		false, // Type-and-unit labels off, as in Prometheus by default.
		false, // No metadata appending (no writes here).
		nil,   // Prometheus's own error-code mapping.
		featureReg,
		apiv1.OpenAPIOptions{ExternalURL: extURL.String(), Version: opts.Version},
		promParser,
	)
	featureReg.Set(features.API, "admin", opts.EnableAdmin)
	featureReg.Set(features.API, "remote_write_receiver", false)
	featureReg.Set(features.API, "otlp_write_receiver", false)

	router := route.New()
	api.Register(router.WithPrefix(PathPrefix))
	guarded := queryGuard{next: router, slots: engine.Slots(), maxSeries: lim.MaxSeries}
	// Endpoints Prometheus's handler registers but vigil does not serve:
	// Prometheus answers them 500 ("disabled") or names its own flags;
	// nothing failed, they are simply not here.
	notServed := []struct{ prefix, msg string }{
		{PathPrefix + "/search/", "the experimental search endpoints are not served; use /api/v1/labels, /api/v1/label/{name}/values and /api/v1/series"},
		{PathPrefix + "/otlp/", "vigil receives OTLP on its OTLP/HTTP address (otlp_http_addr, port 4318 by default) at /v1/metrics, /v1/traces and /v1/logs"},
	}
	if !opts.EnableAdmin {
		notServed = append(notServed, struct{ prefix, msg string }{PathPrefix + "/admin/", "admin endpoints are off: start vigil with --enable-admin (admin.enabled in vigil.yaml)"})
	}
	routed := jsonNotFound(guarded)
	meta := ready(metadataHandler{targets: targets, source: opts.Metadata}.ServeHTTP)
	return pooledGzip(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == PathPrefix+"/metadata" && r.Method == http.MethodGet {
			meta.ServeHTTP(w, r)
			return
		}
		for _, n := range notServed {
			if strings.HasPrefix(r.URL.Path, n.prefix) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusNotFound)
				_ = json.NewEncoder(w).Encode(map[string]string{"status": "error", "errorType": "not_found", "error": n.msg})
				return
			}
		}
		routed.ServeHTTP(w, r)
	})), nil
}

// noTargets stands for a vigil that scrapes nothing.
type noTargets struct{}

func (noTargets) TargetsActive() map[string][]*scrape.Target  { return map[string][]*scrape.Target{} }
func (noTargets) TargetsDropped() map[string][]*scrape.Target { return map[string][]*scrape.Target{} }
func (noTargets) TargetsDroppedCounts() map[string]int        { return map[string]int{} }
func (noTargets) ScrapePools() []string                       { return []string{} }
func (noTargets) ScrapePoolConfig(pool string) (*config.ScrapeConfig, error) {
	return nil, fmt.Errorf("scrape pool %q not found", pool)
}

func rulesOf(r apiv1.RulesRetriever) apiv1.RulesRetriever {
	if r == nil {
		return noRules{}
	}
	return r
}

// noAlertmanagers and noRules: vigil evaluates no rules and sends no alerts
// (yet); the endpoints answer with empty lists as Prometheus would.
type noAlertmanagers struct{}

func (noAlertmanagers) Alertmanagers() []*url.URL        { return nil }
func (noAlertmanagers) DroppedAlertmanagers() []*url.URL { return nil }

type noRules struct{}

func (noRules) RuleGroups() []*rules.Group           { return nil }
func (noRules) AlertingRules() []*rules.AlertingRule { return nil }

// noExemplars answers /query_exemplars on a store that keeps none (Prometheus
// itself dereferences a nil ExemplarQueryable).
type noExemplars struct{}

func (noExemplars) ExemplarQuerier(context.Context) (storage.ExemplarQuerier, error) {
	return noExemplars{}, nil
}

func (noExemplars) Select(int64, int64, ...[]*labels.Matcher) ([]exemplar.QueryResult, error) {
	return []exemplar.QueryResult{}, nil
}

// noTSDB answers the status endpoints when no TSDB was given.
type noTSDB struct{}

func (noTSDB) CleanTombstones() error                                         { return ErrNoTSDB }
func (noTSDB) Delete(context.Context, int64, int64, ...*labels.Matcher) error { return ErrNoTSDB }
func (noTSDB) Snapshot(string, bool) error                                    { return ErrNoTSDB }
func (noTSDB) Stats(string, int) (*tsdb.Stats, error)                         { return nil, ErrNoTSDB }
func (noTSDB) BlockMetas() ([]tsdb.BlockMeta, error)                          { return nil, ErrNoTSDB }
func (noTSDB) WALReplayStatus() (tsdb.WALReplayStatus, error) {
	return tsdb.WALReplayStatus{}, ErrNoTSDB
}

// Compile-time checks that the adapters fit the handler's interfaces.
var (
	_ apiv1.TSDBAdminStats        = noTSDB{}
	_ apiv1.TargetRetriever       = noTargets{}
	_ apiv1.ScrapePoolsRetriever  = noTargets{}
	_ apiv1.AlertmanagerRetriever = noAlertmanagers{}
	_ apiv1.RulesRetriever        = noRules{}
)
