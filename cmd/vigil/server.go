package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	promrules "github.com/prometheus/prometheus/rules"

	"github.com/vigil-observability/vigil/internal/alerting"
	"github.com/vigil-observability/vigil/internal/auth"
	"github.com/vigil-observability/vigil/internal/changes"
	"github.com/vigil-observability/vigil/internal/clusterapi"
	"github.com/vigil-observability/vigil/internal/clusterconfig"
	"github.com/vigil-observability/vigil/internal/config"
	"github.com/vigil-observability/vigil/internal/configcentre"
	"github.com/vigil-observability/vigil/internal/configcentre/configapi"
	"github.com/vigil-observability/vigil/internal/configcentre/guard"
	"github.com/vigil-observability/vigil/internal/consensus"
	"github.com/vigil-observability/vigil/internal/doctor"
	"github.com/vigil-observability/vigil/internal/ingest"
	"github.com/vigil-observability/vigil/internal/ingest/decodecost"
	"github.com/vigil-observability/vigil/internal/ingest/elasticsearch"
	"github.com/vigil-observability/vigil/internal/ingest/gate"
	"github.com/vigil-observability/vigil/internal/ingest/limits"
	"github.com/vigil-observability/vigil/internal/ingest/lokipush"
	"github.com/vigil-observability/vigil/internal/ingest/otlp"
	"github.com/vigil-observability/vigil/internal/ingest/otlpmetrics"
	"github.com/vigil-observability/vigil/internal/ingest/pipeline"
	"github.com/vigil-observability/vigil/internal/ingest/profilescrape"
	"github.com/vigil-observability/vigil/internal/ingest/promremote"
	"github.com/vigil-observability/vigil/internal/ingest/pyroscope"
	"github.com/vigil-observability/vigil/internal/ingest/scrape"
	"github.com/vigil-observability/vigil/internal/lifecycle"
	"github.com/vigil-observability/vigil/internal/logql"
	"github.com/vigil-observability/vigil/internal/memtrim"
	"github.com/vigil-observability/vigil/internal/metricmeta"
	"github.com/vigil-observability/vigil/internal/query/httpapi"
	"github.com/vigil-observability/vigil/internal/query/jaegerapi"
	"github.com/vigil-observability/vigil/internal/query/logsapi"
	"github.com/vigil-observability/vigil/internal/query/lokiapi"
	"github.com/vigil-observability/vigil/internal/query/profileapi"
	"github.com/vigil-observability/vigil/internal/query/promapi"
	"github.com/vigil-observability/vigil/internal/query/querylimit"
	"github.com/vigil-observability/vigil/internal/query/red"
	"github.com/vigil-observability/vigil/internal/registry"
	"github.com/vigil-observability/vigil/internal/registry/registrysd"
	"github.com/vigil-observability/vigil/internal/rules"
	"github.com/vigil-observability/vigil/internal/selfobs"
	"github.com/vigil-observability/vigil/internal/slo"
	"github.com/vigil-observability/vigil/internal/spanmetrics"
	"github.com/vigil-observability/vigil/internal/ui"
	"github.com/vigil-observability/vigil/internal/web"
)

// serverFlags are the command-line settings; a flag given explicitly
// overrides the config file.
type serverFlags struct {
	configFile                          string
	httpAddr, otlpGRPCAddr, otlpHTTPAdr string
	dataDir                             string
	retention                           model.Duration
	logLevel                            slog.Level
	enableAdmin                         bool
}

// parseServerFlags returns the configuration and a function that reads it
// again (the file, then the flags given explicitly), for reloads.
func parseServerFlags(args []string, stderr io.Writer) (*config.Config, func() (*config.Config, error), slog.Level, error) {
	fs := flag.NewFlagSet("vigil server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f serverFlags
	d := config.Defaults()
	fs.StringVar(&f.configFile, "config", "", "path to vigil.yaml")
	fs.StringVar(&f.httpAddr, "http-addr", d.HTTPAddr, "UI, query APIs, remote_write and /metrics")
	fs.StringVar(&f.otlpGRPCAddr, "otlp-grpc-addr", d.OTLPGRPCAddr, "OTLP/gRPC listener")
	fs.StringVar(&f.otlpHTTPAdr, "otlp-http-addr", d.OTLPHTTPAddr, "OTLP/HTTP listener")
	fs.StringVar(&f.dataDir, "data-dir", d.DataDir, "directory of the embedded storage")
	f.retention = d.Retention
	fs.Var(dayDurationFlag{&f.retention}, "retention", "how long data is kept (e.g. 7d, 36h)")
	fs.TextVar(&f.logLevel, "log-level", slog.LevelInfo, "debug, info, warn or error")
	fs.BoolVar(&f.enableAdmin, "enable-admin", false, "serve admin endpoints (POST /-/reload); also admin.enabled in the config")
	if err := fs.Parse(args); err != nil {
		return nil, nil, 0, err
	}
	if fs.NArg() > 0 {
		return nil, nil, 0, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	load := func() (*config.Config, error) {
		cfg, err := config.Load(f.configFile, nil)
		if err != nil {
			return nil, err
		}
		f.override(fs, cfg)
		return cfg, cfg.Validate()
	}
	cfg, err := load()
	return cfg, load, f.logLevel, err
}

// override applies the flags given explicitly.
func (f *serverFlags) override(fs *flag.FlagSet, cfg *config.Config) {
	fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "http-addr":
			cfg.HTTPAddr = f.httpAddr
		case "otlp-grpc-addr":
			cfg.OTLPGRPCAddr = f.otlpGRPCAddr
		case "otlp-http-addr":
			cfg.OTLPHTTPAddr = f.otlpHTTPAdr
		case "data-dir":
			cfg.DataDir = f.dataDir
		case "retention":
			cfg.Retention = f.retention
		case "enable-admin":
			cfg.Admin.Enabled = f.enableAdmin
		}
	})
}

func runServer(args []string, stderr io.Writer) int {
	cfg, reload, level, err := parseServerFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "vigil server: %v\n", err)
		return 2
	}
	logger := selfobs.NewLogger(stderr, level)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, cfg, reload, logger); err != nil {
		logger.Error("server stopped", "err", err)
		return 1
	}
	return 0
}

// serve builds every component, runs them in one lifecycle group until ctx
// ends or one fails, and shuts down stage by stage within
// cfg.ShutdownTimeout (components.go): the ingest gate first (no new
// acknowledgements), then the listeners, then scraping, then rules and the
// write queues (drained), then the span metrics' last flush, the
// Alertmanager, the consensus node (in a cluster), and storage. Nothing
// acknowledged is lost on a clean stop, and the stores' WALs cover an
// unclean one.
//
// reload reads the configuration again; SIGHUP and POST /-/reload (an admin
// endpoint) apply what can change while running: scrape configs and rules.
func serve(ctx context.Context, cfg *config.Config, reload func() (*config.Config, error), logger *slog.Logger) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "vigil_build_info", Help: "vigil's version, commit and Go version; always 1.",
	}, []string{"version", "revision", "goversion"})
	buildInfo.WithLabelValues(version, commit, runtime.Version()).Set(1)
	reg.MustRegister(buildInfo)
	ingestMetrics := selfobs.NewIngestMetrics(reg)
	memGuard, err := newMemoryGuard(cfg, logger, reg)
	if err != nil {
		return err
	}
	// Every long-running component runs in grp from the line that adds it
	// until the stop, which goes by stage (components.go): a component is
	// one grp.Go line. A return before the end (a failure half way through
	// the build) stops what already runs.
	grp := newServerGroup(cfg, logger)
	defer grp.Stop()
	grp.Go(stageDrain, "memory guard", lifecycle.Loop(memGuard.Run))

	// The HTTP listener comes up first so that /-/ready can answer 503
	// while the stores replay their WALs.
	webSrv := web.New(web.Options{Logger: logger, Gatherer: reg, UI: ui.Handler()})
	httpLn, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http listener: %w", err)
	}
	// With web_config_file, every listener authenticates (cfg.Auth; nil
	// leaves them open) and serves TLS if the file configures it.
	// Cross-site requests are refused before authentication: a browser's
	// stored credentials are exactly what a forged request would borrow.
	// In front of both, on every HTTP listener: the Host check against DNS
	// rebinding and one CORS policy for every API (web.* in vigil.yaml).
	browsers, err := web.NewBrowsers(cfg.BrowserOptions(auth.ReadOnly))
	if err != nil {
		return err
	}
	httpServer := newHTTPServer(browsers.Wrap(cfg.HTTPAddr, browsers.CrossOriginProtect(cfg.Auth.Wrap(webSrv))), cfg.Auth, logger)
	grp.Go(stageListeners, "http", httpListener(cfg, logger, "http", httpServer, httpLn))
	logger.Info("listening", "http", httpLn.Addr().String())

	st, err := openStores(ctx, cfg, logger, reg)
	if err != nil {
		return err
	}
	grp.Go(stageStorage, "storage", lifecycle.OnStop(func(context.Context) error { st.close(); return nil }))
	metricsDB, spanLogs := st.metrics, st.spanLogs

	lim := cfg.IngestLimits()
	// Senders' samples count against the series limit; what vigil derives
	// itself (rules, span metrics) and scrapes (sample_limit) do not.
	senderMetrics := limits.LimitSeries(metricsDB, st.metricCaps.Head, cfg.SeriesLimit())
	queueOpts := pipeline.Options{
		MaxQueueItems: cfg.Ingest.MaxQueueItems, MaxBatchItems: cfg.Ingest.MaxBatchItems,
		Ingest: ingestMetrics, Logger: logger,
	}
	// Every stored span and log record also feeds the RED and service
	// graph series, so services that send only traces get charts and rules.
	recorder, err := spanmetrics.New(spanmetrics.Options{Appendable: metricsDB, ExternalLabels: st.external, Registerer: reg, Logger: logger})
	if err != nil {
		return err
	}
	// It flushes once more when stopped, after the queues that feed it
	// have drained and before the TSDB closes.
	grp.Go(stageFlush, "span metrics recorder", recorder)
	// As for logs below: 8 senders of 500 spans had 4,000 in flight while
	// a write took about 1,800 of them, and a DuckDB commit costs much the
	// same whatever it carries.
	tracesOpts := queueOpts
	tracesOpts.Linger = pipeline.DefaultTracesLinger
	traces := pipeline.NewTraces(spanLogs, tracesOpts, recorder.RecordSpans)
	grp.Go(stageDrain, "traces queue", drainQueue(cfg, logger, "traces", traces))
	// Log shippers send small batches often: waiting a few milliseconds
	// for more lets one DuckDB commit take several requests, at a much
	// lower CPU cost per record (docs/performance.md).
	logsOpts := queueOpts
	logsOpts.Linger = pipeline.DefaultLogsLinger
	logs := pipeline.NewLogs(spanLogs, logsOpts, recorder.RecordLogs)
	grp.Go(stageDrain, "logs queue", drainQueue(cfg, logger, "logs", logs))
	// Closed when the stop begins: from then on every receiver answers
	// "retry later" instead of acknowledging what the drain may not store.
	ingestGate := gate.New(gate.Options{})
	var stopBegan time.Time
	grp.Go(stageIngest, "ingest gate", refuseIngest(cfg, logger, webSrv, ingestGate, &stopBegan))
	grp.Go(stageFlush, "drained", drained(logger, &stopBegan))
	// Metric metadata for /api/v1/metadata beside the scrape targets':
	// vigil's own series from the start, senders' as they arrive.
	metricMeta := metricmeta.New(metricmeta.Options{Registerer: reg})
	metricMeta.SetAll(spanmetrics.Metadata())
	metrics := otlpmetrics.NewConsumer(otlpmetrics.Options{
		Appendable: metricmeta.Recording(senderMetrics, metricMeta), Limits: lim, Ingest: ingestMetrics, Logger: logger, Registerer: reg,
	})

	// In a cluster on a shared store every node scrapes, the leader writes.
	scrapeWrites := newLeaderWrites(cfg)
	// The service registry's instances, in memory (docs/registry.md);
	// unless registry.scrape is false they are scraped with no scrape
	// config, as the implicit job "registry".
	// Its joins and leaves are change events, in memory as it is.
	joinsLeaves := changes.NewMembership(0, reg)
	instances := registry.New(registry.Options{OnMembership: joinsLeaves.Record})
	// Service discovery's metrics, shared by the metric and the profile
	// scrapers' discovery managers.
	sdMetrics, err := discovery.CreateAndRegisterSDMetrics(reg)
	if err != nil {
		return fmt.Errorf("service discovery metrics: %w", err)
	}
	scrapeOpts := scrape.Options{Appendable: metricsDB, Writing: scrapeWrites.writing(), Logger: logger, Registerer: reg, SDMetrics: sdMetrics}
	if cfg.Registry.ScrapeOn() {
		scrapeOpts.ImplicitJobs = []scrape.ImplicitJob{{Name: registrysd.JobName, Discovery: &registrysd.Config{Registry: instances}}}
		// Only the node an instance registered with scrapes it: that
		// node writes it, leader or not.
		scrapeOpts.Own = registrysd.Registered
	}
	scraper, err := scrape.New(scrapeOpts)
	if err != nil {
		return err
	}
	if err := scraper.ApplyConfig(cfg.Prometheus); err != nil {
		return fmt.Errorf("scrape config: %w", err)
	}
	grp.Go(stageScrape, "scrape", lifecycle.RunStop(scraper.Run, scraper.Stop))

	// One budget for every receiver: what requests being decoded may take
	// of the heap, whichever listener they came through (and the profiles
	// pulled from targets).
	decodeBudget := decodecost.NewBudget(decodecost.SizeFor(memGuard.Headroom()))
	decodeBudget.Register(reg)
	// Profiles pulled from the /debug/pprof endpoints of the targets of
	// profile_scrape_configs (docs/profiling.md), checked and stored as
	// pushed ones are. It runs only while the section has jobs; a reload
	// applies the section and turns it on or off.
	profScraper, err := profilescrape.New(profilescrape.Options{
		Writer: pyroscope.NewWriter(pyroscope.WriterOptions{
			Profiles: st.profiles, Limits: lim, Ingest: ingestMetrics, Logger: logger,
		}),
		DecodeBudget: decodeBudget, Ingest: ingestMetrics, Writing: scrapeWrites.writing(),
		SDMetrics: sdMetrics, Registerer: reg, Logger: logger.With("component", "profile scrape"),
	})
	if err != nil {
		return err
	}
	if err := profScraper.ApplyConfig(cfg.ProfileScrape); err != nil {
		return err
	}
	profScrape := lifecycle.NewSwitch(profScraper)
	grp.Go(stageScrape, "profile scrape", profScrape)
	if err := switchProfileScrape(context.Background(), profScrape, cfg.ProfileScrape); err != nil {
		return err
	}

	// The built-in Alertmanager always runs, so silences and the
	// Alertmanager API (amtool, the UI) work; without an alertmanager.yml
	// alerts route to a receiver that sends nothing.
	amDir := filepath.Join(cfg.DataDir, "alertmanager")
	amFile, err := alertmanagerFile(cfg, amDir)
	if err != nil {
		return err
	}
	allowOutbound, err := alerting.ParseAllowOutbound(cfg.Alerting.AllowOutbound)
	if err != nil {
		return err
	}
	// Every link vigil hands out to itself starts with this one URL:
	// notifications, alerts' generator URLs, rule templates' $externalURL
	// and the Prometheus API's.
	externalURL, err := cfg.ExternalURL()
	if err != nil {
		return err
	}
	amOpts := alerting.Options{
		ConfigFile: amFile, DataDir: amDir, ExternalURL: externalURL,
		ExternalLabels: cfg.Prometheus.GlobalConfig.ExternalLabels,
		Logger:         logger.With("component", "alertmanager"), Registerer: reg,
		AllowOutbound: allowOutbound,
	}
	// With cluster: in vigil.yaml this node is one of several
	// (docs/cluster.md): silences and the notification log are the
	// cluster's, committed before the API answers, and only the leader
	// notifies, each notification fenced by its term.
	// Without it nothing below changes.
	var cluster *clusterNode
	if cfg.Cluster != nil {
		if cluster, err = openCluster(cfg, logger, reg); err != nil {
			return err
		}
		grp.Go(stageConsensus, "consensus", closeConsensus(logger, cluster.node))
		webSrv.SetReadyCheck(cluster.readyCheck)
		amOpts.Replication, amOpts.Fencer = cluster.repl, cluster.node
		scrapeWrites.attach(cluster.node)
	}
	am, err := alerting.New(amOpts)
	if err != nil {
		return fmt.Errorf("alertmanager: %w", err)
	}
	grp.Go(stageAlerting, "alertmanager", am)
	var membership consensus.Membership // nil: /api/v1/cluster says single-node
	if cluster == nil {
		webSrv.Handle("/api/v2/", am.Handler())
	} else {
		webSrv.Handle("/api/v2/", withCallerAuth(am.Handler()))
		// Node to node; a POST outside the listed paths, so it needs the
		// admin role when authentication is on, as a silence write does.
		webSrv.Handle("POST "+alerting.InternalSilencesPath, cluster.repl.InternalHandler())
		// A GET a follower makes with the credentials of the read it
		// serves: a silence read's (read role) or a configuration read's
		// (any credential, which auth.Classify allows here too).
		webSrv.Handle("GET "+alerting.InternalReadIndexPath, cluster.repl.InternalReadIndexHandler())
		membership = cluster.node
	}
	webSrv.Handle("GET /api/v1/cluster", clusterHandler(cfg, cluster))
	if cfg.Admin.Enabled {
		// Membership changes, like the reload, only with admin endpoints
		// on, and behind the admin role when authentication is on (a
		// DELETE, and a POST outside the listed paths). A follower names
		// the leader and its API from the peers' api_url.
		members := clusterapi.MembersOptions{Membership: membership, APIURLs: cfg.ClusterAPIURLs()}
		webSrv.Handle("POST "+clusterapi.MembersPath, clusterapi.JoinHandler(members))
		webSrv.Handle("DELETE "+clusterapi.MembersPath+"/{id}", clusterapi.RemoveHandler(members))
	}

	// One set of query slots for every query path (API, rules, RED,
	// traces, logs, the doctor), so their sum stays inside the memory limit.
	queryLimits := cfg.QueryLimits()
	querySlots := querylimit.NewSlots(queryLimits.MaxConcurrency, queryLimits.QueueWait)
	var promCfg atomic.Pointer[promconfig.Config] // what /api/v1/status/config shows
	promCfg.Store(cfg.Prometheus)
	// One PromQL engine for the API, rules, RED and the doctor: one set of
	// limits and engine metrics. As in Prometheus, a subquery without a
	// step steps by the global evaluation interval, also after a reload.
	queryEngine := querylimit.NewEngine(querylimit.Options{
		EngineOpts: promql.EngineOpts{Logger: logger.With("component", "query engine"), Reg: reg},
		Limits:     queryLimits, Slots: querySlots,
		Plan: querylimit.Plan{DefaultStep: func(int64) int64 {
			return time.Duration(promCfg.Load().GlobalConfig.EvaluationInterval).Milliseconds()
		}},
	})
	notify, notifyGate := rulesNotify(cfg, cluster, am.Notify)
	newRules := func(metrics *promrules.Metrics) (*rules.Manager, error) {
		return rules.New(rules.Options{
			Appendable: metricsDB, Queryable: metricsDB, Dir: filepath.Join(cfg.DataDir, "rules"),
			Notify: notify, Logger: logger, Registerer: reg, Metrics: metrics, Engine: queryEngine, ExternalURL: externalURL,
		})
	}
	var amUnconfigured atomic.Bool // no alertmanager.yml: alerts notify no one on purpose
	amUnconfigured.Store(cfg.AlertmanagerConfigFile == "")
	var sloSpecs atomic.Pointer[[]slo.Spec] // what the doctor's SLO check judges
	specs, err := cfg.SLOSpecs()
	if err != nil {
		return err
	}
	sloSpecs.Store(&specs)
	initial, err := rulesConfig(cfg)
	if err != nil {
		return err
	}
	var ruleMgr ruleSet
	var configSync *clusterconfig.Syncer // in a cluster: the replicated rules and Alertmanager config
	if cluster == nil {
		m, err := newRules(nil)
		if err != nil {
			return err
		}
		if err := m.Apply(initial); err != nil {
			return fmt.Errorf("rules: %w", err)
		}
		ruleMgr = m
		grp.Go(stageDrain, "rules", runRules(cfg, logger, m))
	} else {
		// Which node evaluates which rules depends on the store
		// (cluster_writers.go). This node's own rule files failing is not
		// fatal yet: the cluster's replace them (clusterconfig.go), before
		// the rules start.
		rs, startRules, localErr, err := clusterRules(grp, cfg, logger, reg, cluster, notifyGate, newRules, initial)
		if err != nil {
			return err
		}
		ruleMgr = rs
		configSync, err = startClusterConfig(cfg, cluster, &sharedInstaller{
			rules: rs, am: am, amDir: amDir, prom: &promCfg, slos: &sloSpecs, amUnconfigured: &amUnconfigured,
		}, localErr, logger, reg)
		if err != nil {
			return fmt.Errorf("cluster configuration: %w", err)
		}
		grp.Go(stageIngest, "cluster config", lifecycle.Loop(configSync.Run))
		mountClusterConfig(webSrv, configSync, cfg.Admin.Enabled)
		startRules()
	}

	// apply installs a reloaded configuration: what can change while
	// running (scrape configs, rules) changes, the rest needs a restart;
	// it returns the changed settings of that rest it knows of.
	// In a cluster the rules, SLOs and Alertmanager config are the
	// cluster's: committed through the log, then put into service on every
	// node; the rest is this node's own.
	var applyMu sync.Mutex
	apply := func(ctx context.Context) ([]string, error) {
		applyMu.Lock()
		defer applyMu.Unlock()
		next, err := reload()
		if err != nil {
			return nil, err
		}
		// Check every part before applying any, so a reload is all or
		// nothing.
		if err := cfg.Auth.CheckUpdate(next.Auth); err != nil {
			return nil, fmt.Errorf("web_config_file: %w", err)
		}
		rc, err := rulesConfig(next)
		if err != nil {
			return nil, err
		}
		if err := rules.Validate(rc.Files, logger); err != nil {
			return nil, err
		}
		nextAM, err := alertmanagerFile(next, amDir)
		if err != nil {
			return nil, err
		}
		if err := alerting.ValidateConfig(nextAM); err != nil {
			return nil, err
		}
		if err := profilescrape.CheckConfig(next.ProfileScrape); err != nil {
			return nil, err
		}
		if configSync != nil {
			if err := reloadClusterConfig(ctx, configSync, next); err != nil {
				return nil, err
			}
		} else {
			if err := ruleMgr.Apply(rc); err != nil {
				return nil, err
			}
			if err := am.ApplyConfig(nextAM); err != nil {
				return nil, fmt.Errorf("alertmanager: %w", err)
			}
		}
		if err := scraper.ApplyConfig(next.Prometheus); err != nil {
			return nil, fmt.Errorf("scrape config: %w", err)
		}
		if err := profScraper.ApplyConfig(next.ProfileScrape); err != nil {
			return nil, err
		}
		if err := switchProfileScrape(ctx, profScrape, next.ProfileScrape); err != nil {
			return nil, err
		}
		// Users, tokens and roles: requests already admitted finish.
		if err := cfg.Auth.Update(next.Auth); err != nil {
			return nil, fmt.Errorf("web_config_file: %w", err)
		}
		promCfg.Store(next.Prometheus)
		if configSync != nil {
			// Again, for this node's evaluation interval and external
			// labels, which the rules take from the new global: section.
			if err := configSync.Reinstall(); err != nil {
				return nil, err
			}
		} else {
			amUnconfigured.Store(next.AlertmanagerConfigFile == "")
			if specs, err := next.SLOSpecs(); err == nil { // checked by rulesConfig above
				sloSpecs.Store(&specs)
			}
		}
		// The query limits are built into the PromQL and LogQL engines
		// and the query slots when the server starts; a changed limit
		// must not look applied when it is not.
		pending := append(restartPending(queryLimits, next.QueryLimits()), restartSections(cfg, next)...)
		if len(pending) > 0 {
			logger.Warn("configuration reloaded; some settings take effect only after a restart", "settings", pending)
		} else {
			logger.Info("configuration reloaded")
		}
		return pending, nil
	}
	grp.Go(stageIngest, "reloader", reloadOnSIGHUP(apply, logger))
	if cfg.Admin.Enabled {
		webSrv.Handle("POST /-/reload", withCallerAuth(reloadHandler(apply)))
		// Behind the admin role when authentication is on.
		webSrv.MountPprof()
	}

	promAPI, err := promapi.New(promapi.Options{
		ExemplarQueryable: st.metricCaps.Exemplars,
		Queryable:         metricsDB, TSDB: st.metricCaps.Admin, Targets: scraper, ListenAddress: cfg.HTTPAddr, Rules: ruleMgr,
		EnableAdmin: cfg.Admin.Enabled && st.metricCaps.Admin != nil, TSDBDir: filepath.Join(cfg.DataDir, "tsdb"),
		Config: func() promconfig.Config { return *promCfg.Load() },
		Flags:  prometheusFlags(cfg), Branch: branch,
		Logger: logger, Registerer: reg, Gatherer: reg,
		Version: version, Revision: commit, GoVersion: runtime.Version(),
		Ready: webSrv.Ready, CORSOrigin: cfg.Web.CORSOrigin, Metadata: metricMeta,
		Engine: queryEngine, ExternalURL: externalURL,
	})
	if err != nil {
		return err
	}
	webSrv.Handle(promapi.PathPrefix+"/", promAPI)

	// The Loki push API's active streams, bounded by the limits and read
	// by the doctor for the labels that multiply them.
	streamTracker := limits.NewStreamTracker(cfg.StreamLimits())

	// The configuration centre (docs/config-centre.md).
	centre, err := mountConfigCentre(cfg, cluster, grp, webSrv, configapi.Options{
		Logger:     logger.With("component", "config centre"),
		Principal:  func(r *http.Request) string { return auth.Principal(r.Context()) },
		CheckGuard: func(g json.RawMessage) error { return guard.Check(g, *sloSpecs.Load()) },
		// Deploys are derived from the stored build_info series when
		// asked for: nothing polls, nothing is written to the log.
		// The registry's joins and leaves come with them.
		Deploys: func(ctx context.Context, start, end time.Time) ([]configcentre.Change, error) {
			deploys, err := changes.Deploys(ctx, metricsDB, start, end)
			if err != nil {
				return nil, err
			}
			return changes.Merge(joinsLeaves.Changes(start, end), deploys), nil
		},
		Registerer: reg,
	}, guard.Options{
		// The SLO guards read the SLI series the rules record, which
		// change once per evaluation interval.
		Interval: time.Duration(cfg.Prometheus.GlobalConfig.EvaluationInterval),
		Query:    promrules.EngineQueryFunc(queryEngine, metricsDB),
		SLOs:     func() []slo.Spec { return *sloSpecs.Load() },
		Notify:   am.Notify,
		Logger:   logger.With("component", "config guard"), Registerer: reg,
	})
	if err != nil {
		return fmt.Errorf("config centre: %w", err)
	}

	// What /api/v1/changes lists, for the doctor's change_regression.
	listChanges := func(ctx context.Context, start, end time.Time) ([]configcentre.Change, error) {
		deploys, err := changes.Deploys(ctx, metricsDB, start, end)
		if err != nil {
			return nil, err
		}
		return changes.Merge(centre.Changes(start, end), deploys), nil
	}
	prober := doctor.NewProber(doctor.ProberOptions{})
	tlsCheck := doctor.TLSCheck{Config: promCfg.Load, Targets: scraper, Prober: prober}
	doc, err := doctor.New(doctor.Options{
		Checks: []doctor.Check{
			doctor.ScrapeCheck{Targets: scraper, TLS: tlsCheck},
			tlsCheck,
			doctor.ConfigCheck{Config: promCfg.Load, Targets: scraper, Prober: prober},
			doctor.RuleCheck{Rules: ruleMgr, Metrics: metricsDB},
			doctor.RoutingCheck{Rules: ruleMgr, Router: am, Unconfigured: amUnconfigured.Load},
			doctor.LogsCheck{Logs: spanLogs, Spans: spanLogs},
			doctor.PropagationCheck{Spans: spanLogs},
			doctor.TimingCheck{Spans: spanLogs},
			doctor.TraceLogsCheck{Coverage: spanLogs},
			doctor.ProfilesCheck{Spans: spanLogs, Profiles: st.profiles},
			doctor.SuppressionCheck{Alerts: am},
			doctor.NotifyCheck{Deliveries: am},
			doctor.SLOCheck{SLOs: func() []slo.Spec { return *sloSpecs.Load() }, Metrics: metricsDB, Engine: queryEngine},
			doctor.ConsensusCheck{Metrics: metricsDB, Engine: queryEngine},
			doctor.MetricsCheck{Targets: scraper, Metrics: metricsDB, Spans: spanLogs},
			doctor.SignalsCheck{Spans: spanLogs, Logs: spanLogs, Metrics: metricsDB},
			&doctor.CardinalityCheck{Metrics: metricsDB, Head: st.metricCaps.Head},
			&doctor.IngestCheck{Gatherer: reg, Sources: ingestMetrics.Sources},
			doctor.LogStreamsCheck{Streams: streamTracker},
			doctor.ChangeRegressionCheck{Changes: listChanges, Metrics: metricsDB, Engine: queryEngine},
			doctor.StaleConfigCheck{Config: centre, Metrics: metricsDB, Engine: queryEngine},
		},
		Interval: time.Duration(cfg.Doctor.Interval),
		Leading:  doctorLeading(cfg, cluster),
		Logger:   logger, Registerer: reg,
	})
	if err != nil {
		return err
	}
	grp.Go(stageDrain, "doctor", lifecycle.Loop(doc.Run))
	recheckOnLeader(grp, cfg, cluster, doc)
	webSrv.Handle("/api/doctor", doc.Handler())
	// The remote_write series cache holds as many series as the head may
	// (a map slot each; the labels are the head's own), so that a fleet
	// within the series limit never cycles through it.
	rwSeriesCache := int(min(cfg.SeriesLimit(), 1<<24))
	if rwSeriesCache == 0 {
		rwSeriesCache = promremote.DefaultSeriesCacheSize
	}
	webSrv.Handle("POST "+promremote.Path, ingestGate.Wrap(promremote.NewHandler(promremote.Options{
		Appendable: senderMetrics, Limits: lim, Ingest: ingestMetrics, Memory: memGuard,
		MaxInFlight: cfg.Ingest.MaxRequestsInFlight, Logger: logger, Registerer: reg,
		DecodeBudget: decodeBudget, Metadata: metricMeta, SeriesCacheSize: rwSeriesCache,
	})))
	// Logs from agents that ship to Elasticsearch (docs/logs.md): an
	// ingest route whatever the method, under a path prefix and at the
	// root, where agents configured with a bare host and port call it
	// (elasticsearch.RootRequest: a browser there gets the UI).
	esAPI := ingestGate.Wrap(elasticsearch.NewHandler(elasticsearch.Options{
		Logs: ingestGate.Logs(logs), Limits: lim, Ingest: ingestMetrics, Logger: logger, DecodeBudget: decodeBudget,
		Admission: ingest.NewAdmission(ingest.AdmissionOptions{MaxInFlight: cfg.Ingest.MaxRequestsInFlight, Memory: memGuard}),
	}))
	webSrv.Handle(elasticsearch.PathPrefix+"/", http.StripPrefix(elasticsearch.PathPrefix, esAPI))
	webSrv.HandleRoot(func(r *http.Request) bool { return elasticsearch.RootRequest(r.Method, r.URL.Path, r.Header) }, esAPI)
	// Logs from agents that ship to Loki (Promtail, Alloy, the Node and
	// Python Loki clients), at Loki's own paths so that the agent's Loki
	// URL is vigil's web address. The push shares the ingest gate,
	// admission and decode budget of the other receivers; /ready and
	// buildinfo are the probes agents and Grafana make first.
	loki := lokipush.NewHandler(lokipush.HandlerOptions{
		Logs: ingestGate.Logs(logs), Limits: lim, Ingest: ingestMetrics, Logger: logger, DecodeBudget: decodeBudget,
		MaxLineBytes: int(cfg.Limits.MaxLineBytes), MaxLabelsPerStream: cfg.Limits.MaxLabelsPerStream, Streams: streamTracker,
		Admission: ingest.NewAdmission(ingest.AdmissionOptions{MaxInFlight: cfg.Ingest.MaxRequestsInFlight, Memory: memGuard}),
		Ready:     webSrv.NotReady,
		Build:     lokipush.BuildInfo{Revision: commit, Branch: branch},
	})
	webSrv.Handle("POST "+lokipush.PushPath, ingestGate.Wrap(loki))
	webSrv.Handle("GET "+lokipush.ReadyPath, loki)
	webSrv.Handle("GET "+lokipush.BuildInfoPath, loki)
	// Profiles from Pyroscope clients (pyroscope-go) and plain pprof
	// uploads, at Pyroscope's own path (docs/profiling.md), and their
	// query API.
	webSrv.Handle("POST "+pyroscope.Path, ingestGate.Wrap(pyroscope.NewHandler(pyroscope.Options{
		Profiles: st.profiles, Limits: lim, Ingest: ingestMetrics, Logger: logger, DecodeBudget: decodeBudget,
		Admission: ingest.NewAdmission(ingest.AdmissionOptions{MaxInFlight: cfg.Ingest.MaxRequestsInFlight, Memory: memGuard}),
	})))
	// The profile scrape targets and their last scrape, as
	// /api/v1/targets shows the metric scrape's.
	webSrv.Handle("GET "+profilescrape.TargetsPath, profilescrape.Handler(profScraper))
	httpapi.Mount(webSrv, profileapi.Routes, profileapi.NewHandler(profileapi.Options{
		Profiles: st.profiles, Slots: querySlots, Logger: logger, Registerer: reg,
		// A diff between versions finds them in the deploys that
		// /api/v1/changes lists.
		Deploys: func(ctx context.Context, start, end time.Time) ([]configcentre.Change, error) {
			return changes.Deploys(ctx, metricsDB, start, end)
		},
	}))
	redSvc, err := red.New(red.Options{Spans: spanLogs, Queryable: metricsDB, Logger: logger, Engine: queryEngine})
	if err != nil {
		return err
	}
	httpapi.Mount(webSrv, red.Routes, redSvc.Handler())
	httpapi.Mount(webSrv, jaegerapi.Routes, jaegerapi.NewHandler(jaegerapi.Options{
		Traces: spanLogs, Dependencies: redSvc, Logger: logger, Registerer: reg,
		MaxTraceSpans: queryLimits.MaxTraceSpans, MaxTraceBytes: queryLimits.TraceBytes(), Slots: querySlots,
	}))
	httpapi.Mount(webSrv, logsapi.Routes, logsapi.NewHandler(logsapi.Options{Logs: spanLogs, Logger: logger, Registerer: reg, Slots: querySlots}))
	httpapi.Mount(webSrv, lokiapi.Routes, lokiapi.NewHandler(lokiapi.Options{
		Logs: spanLogs, Logger: logger, Registerer: reg, Slots: querySlots,
		// A LogQL query runs as long as a PromQL one may; its other bounds
		// are Loki's.
		Engine: logql.NewEngine(logql.EngineOptions{Timeout: queryLimits.Timeout}),
	}))

	// The service registry (docs/registry.md).
	outbound := alerting.OutboundDialContext(allowOutbound)
	mountRegistry(grp, webSrv, instances, logger.With("component", "registry"), reg, outbound)
	// Incident snapshots (docs/snapshots.md): every instance of a service
	// asked for its fault scene at once, kept with the service's traces,
	// logs and alerts of the same minutes.
	if err := mountSnapshots(webSrv, cfg.DataDir, logger.With("component", "snapshots"), instances, scraper, spanLogs, ruleMgr, outbound); err != nil {
		return err
	}

	otlpOpts := otlp.Options{
		Traces: ingestGate.Traces(traces), Logs: ingestGate.Logs(logs), Metrics: ingestGate.Metrics(metrics),
		Limits: lim, Ingest: ingestMetrics, Logger: logger,
		MaxConcurrentRequests: cfg.Ingest.MaxRequestsInFlight, Memory: memGuard, DecodeBudget: decodeBudget,
	}
	otlpHTTPLn, err := net.Listen("tcp", cfg.OTLPHTTPAddr)
	if err != nil {
		return fmt.Errorf("otlp http listener: %w", err)
	}
	otlpHTTP := newHTTPServer(browsers.Wrap(cfg.OTLPHTTPAddr, cfg.Auth.Wrap(ingestGate.Wrap(otlp.NewHTTPHandler(otlpOpts)))), cfg.Auth, logger)
	grp.Go(stageListeners, "otlp http", httpListener(cfg, logger, "otlp http", otlpHTTP, otlpHTTPLn))
	grpcLn, err := net.Listen("tcp", cfg.OTLPGRPCAddr)
	if err != nil {
		return fmt.Errorf("otlp grpc listener: %w", err)
	}
	grpcLn = otlp.LimitGRPCListener(grpcLn)
	grpcSrv := otlp.NewGRPCServer(otlpOpts, cfg.Auth.GRPCOptions()...)
	grp.Go(stageListeners, "otlp grpc", grpcListener(cfg, logger, grpcSrv, grpcLn))
	// What start-up alone used goes back to the operating system: its
	// garbage and the executable's pages that a server at rest does not
	// run (docs/performance.md, "Idle memory"). Before /-/ready answers,
	// so that the memory of a ready server is its memory at rest.
	if released, err := memtrim.Startup(); err != nil {
		logger.Warn("releasing start-up memory", "err", err)
	} else {
		logger.Debug("released start-up memory", "executable_bytes", released.ExecutableBytes)
	}
	webSrv.SetReady()
	// And what a burst of work leaves behind, once it is over.
	grp.Go(stageDrain, "idle memory trim", lifecycle.Loop(memtrim.NewIdleTrimmer(memtrim.IdleOptions{Logger: logger}).Run))
	logger.Info("ready", "http", httpLn.Addr().String(), "otlp_grpc", grpcLn.Addr().String(),
		"otlp_http", otlpHTTPLn.Addr().String(), "data_dir", cfg.DataDir, "version", version)

	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case <-grp.Failed():
	}
	return grp.Stop()
}

// ruleSet is what serve's consumers of the rules use: the reload applies
// to it, the API and the doctor read its groups. A *rules.Manager on a
// single node, a *leaderRules in a cluster.
type ruleSet interface {
	Apply(rules.Config) error
	RuleGroups() []*promrules.Group
	AlertingRules() []*promrules.AlertingRule
}

// prometheusFlags are the settings of cfg that have a Prometheus flag, by
// that flag's name, for /api/v1/status/flags (the query API adds its own).
func prometheusFlags(cfg *config.Config) map[string]string {
	flags := map[string]string{
		"storage.tsdb.retention.time": dayDuration(cfg.Retention).String(),
		"web.enable-lifecycle":        strconv.FormatBool(cfg.Admin.Enabled),
		"web.config.file":             cfg.WebConfigFile,
	}
	if cfg.Storage.Backend == config.BackendEmbedded {
		flags["storage.tsdb.path"] = filepath.Join(cfg.DataDir, "tsdb")
	}
	return flags
}

// dayDuration prints whole days in days ("7d", as README and vigil.yaml
// write the retention) where model.Duration would print weeks ("1w").
type dayDuration model.Duration

func (d dayDuration) String() string {
	const day = 24 * time.Hour
	if v := time.Duration(d); v > 0 && v%day == 0 {
		return strconv.FormatInt(int64(v/day), 10) + "d"
	}
	return model.Duration(d).String()
}

// dayDurationFlag is a model.Duration flag whose default `-h` shows in days.
type dayDurationFlag struct{ d *model.Duration }

func (f dayDurationFlag) String() string {
	if f.d == nil {
		return ""
	}
	return dayDuration(*f.d).String()
}

func (f dayDurationFlag) Set(s string) error { return f.d.Set(s) }

// defaultAlertmanagerConfig routes every alert to a receiver that sends
// nothing: alerts and silences still work through the API and the UI.
const defaultAlertmanagerConfig = `# Written by vigil: no alertmanager_config_file is configured.
route:
  receiver: none
receivers:
  - name: none
`

// alertmanagerFile is the configured alertmanager.yml, or a default one
// written into dir.
func alertmanagerFile(cfg *config.Config, dir string) (string, error) {
	if cfg.AlertmanagerConfigFile != "" {
		return cfg.AlertmanagerConfigFile, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("alertmanager: %w", err)
	}
	path := filepath.Join(dir, "default.yml")
	if err := os.WriteFile(path, []byte(defaultAlertmanagerConfig), 0o644); err != nil {
		return "", fmt.Errorf("alertmanager: %w", err)
	}
	return path, nil
}

// rulesConfig is what the rules manager runs for cfg: its rule files and
// the rules its SLOs generate.
func rulesConfig(cfg *config.Config) (rules.Config, error) {
	files, err := cfg.RuleFilePaths()
	if err != nil {
		return rules.Config{}, err
	}
	specs, err := cfg.SLOSpecs()
	if err != nil {
		return rules.Config{}, err
	}
	var generated []rulefmt.RuleGroup
	if len(specs) > 0 {
		if generated, err = slo.Generate(specs); err != nil {
			return rules.Config{}, fmt.Errorf("slos: %w", err)
		}
	}
	return rules.Config{
		Interval:       time.Duration(cfg.Prometheus.GlobalConfig.EvaluationInterval),
		Files:          files,
		Generated:      generated,
		ExternalLabels: cfg.Prometheus.GlobalConfig.ExternalLabels,
	}, nil
}

// switchProfileScrape runs the profile scraper while jobs has a job: a
// server without profile_scrape_configs runs no discovery for it.
func switchProfileScrape(ctx context.Context, sw *lifecycle.Switch, jobs []*profilescrape.JobConfig) error {
	if len(jobs) == 0 {
		if err := sw.Off(ctx); err != nil {
			return fmt.Errorf("stopping the profile scraper: %w", err)
		}
		return nil
	}
	if err := sw.On(); err != nil {
		return fmt.Errorf("starting the profile scraper: %w", err)
	}
	return nil
}

// reloadOnSIGHUP applies the configuration again at every SIGHUP until it
// is stopped; a failed reload keeps what runs.
func reloadOnSIGHUP(apply func(context.Context) ([]string, error), logger *slog.Logger) lifecycle.Component {
	return lifecycle.Loop(func(ctx context.Context) {
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if _, err := apply(ctx); err != nil {
					logger.Error("reload failed; the previous configuration keeps running", "err", err)
				}
			}
		}
	})
}

// reloadHandler serves POST /-/reload: 200 when the configuration was
// applied, 400 with the reason when it was refused (nothing changed then);
// in a cluster also 503 or 500 (reloadStatus). A 200 lists, one a line,
// the changed settings that wait for a restart.
func reloadHandler(apply func(context.Context) ([]string, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		pending, err := apply(r.Context())
		if err != nil {
			w.WriteHeader(reloadStatus(err))
			fmt.Fprintf(w, "reload failed, the previous configuration keeps running: %v\n", err)
			return
		}
		fmt.Fprintln(w, "configuration reloaded")
		for _, p := range pending {
			fmt.Fprintf(w, "needs a restart to take effect: %s\n", p)
		}
	})
}

// restartPending names the query limits that differ between running, as
// the server started with, and next, from the file just read: a reload
// leaves them as they are.
func restartPending(running, next querylimit.Limits) []string {
	var out []string
	diff := func(name string, run, want any) {
		if run != want {
			out = append(out, fmt.Sprintf("query.%s (running %v, configured %v)", name, run, want))
		}
	}
	diff("timeout", running.Timeout, next.Timeout)
	diff("max_samples", running.MaxSamples, next.MaxSamples)
	diff("max_series", running.MaxSeries, next.MaxSeries)
	diff("max_response_bytes", running.MaxResponseBytes, next.MaxResponseBytes)
	diff("max_concurrency", running.MaxConcurrency, next.MaxConcurrency)
	diff("max_trace_spans", running.MaxTraceSpans, next.MaxTraceSpans)
	return out
}

// restartSections names the settings outside the query limits that a
// reload reads but does not apply (listeners, stores, ingest and the
// other parts built once at start-up) and that differ between running
// and next, as the file's keys; their values are not shown, as a
// section such as storage may hold credentials.
func restartSections(running, next *config.Config) []string {
	var out []string
	for _, s := range []struct {
		key       string
		run, want any
	}{
		{"http_addr", running.HTTPAddr, next.HTTPAddr},
		{"otlp_grpc_addr", running.OTLPGRPCAddr, next.OTLPGRPCAddr},
		{"otlp_http_addr", running.OTLPHTTPAddr, next.OTLPHTTPAddr},
		{"data_dir", running.DataDir, next.DataDir},
		{"retention", running.Retention, next.Retention},
		{"shutdown_timeout", running.ShutdownTimeout, next.ShutdownTimeout},
		{"storage", running.Storage, next.Storage},
		{"limits", running.Limits, next.Limits},
		{"ingest", running.Ingest, next.Ingest},
		{"admin", running.Admin, next.Admin},
		{"doctor", running.Doctor, next.Doctor},
		{"registry", running.Registry, next.Registry},
		{"web", running.Web, next.Web},
		{"alerting", running.Alerting, next.Alerting},
		{"cluster", running.Cluster, next.Cluster},
	} {
		if !reflect.DeepEqual(s.run, s.want) {
			out = append(out, s.key)
		}
	}
	return out
}

// newHTTPServer returns a server for h, with TLS when a's web config sets
// it up (a may be nil).
func newHTTPServer(h http.Handler, a *auth.Authenticator, logger *slog.Logger) *http.Server {
	var tc *tls.Config
	if a != nil {
		tc = a.TLSConfig()
	}
	return &http.Server{
		Handler:           h,
		TLSConfig:         tc,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

func serveHTTP(s *http.Server, ln net.Listener, name string) error {
	serve := s.Serve
	if s.TLSConfig != nil {
		// The certificate comes from TLSConfig.GetCertificate.
		serve = func(ln net.Listener) error { return s.ServeTLS(ln, "", "") }
	}
	if err := serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}
