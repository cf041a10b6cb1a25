// Package shop is vigil's demo: four small services (gateway, catalog,
// orders, payments) wired with the vigil SDK only, run in one process, with
// switches that reproduce the failures observability exists to catch.
//
// Topology, each service on its own 127.0.0.1 port with its own /metrics and
// health endpoints:
//
//	load generator → gateway ─HTTP→ catalog   GET /products, GET /products/{id}
//	                         └HTTP→ orders    POST /orders ─gRPC→ payments /shop.Payments/Charge
//
// Each service has its own vigil.Start, so its own tracer provider, logger
// and registry. Start also installs OpenTelemetry's and slog's globals, and
// with four services in one process those belong to whichever started last,
// so nothing here reads them: every span comes from a Service's own
// middleware, transport or gRPC options and every log line from its own
// Logger.
package shop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	vigil "github.com/vigil-observability/vigil/sdk"
	"github.com/vigil-observability/vigil/sdk/diag"
)

// Options configures Run.
type Options struct {
	// OTLPEndpoint is where every service sends traces and logs
	// ("host:port" or a URL); empty means the SDK's default
	// (OTEL_EXPORTER_OTLP_ENDPOINT, then localhost).
	OTLPEndpoint string
	// Protocol is "grpc" or "http/protobuf"; empty means the SDK's default.
	Protocol string
	// PortBase is the gateway's port; catalog, orders and payments listen on
	// the next three. Zero means DefaultPortBase.
	PortBase int
	// RPS is the load generator's request rate against the gateway; zero
	// means no load (drive the gateway yourself).
	RPS float64
	// ConfigURL is vigil's API (e.g. "http://localhost:7070"), whose
	// configuration centre holds payments' settings (SettingsItem): Run
	// puts FormalSettings there when the item does not exist, and payments
	// watches it. Empty means VIGIL_URL; without either, or when vigil
	// cannot be reached, payments runs on its defaults (those of
	// FormalSettings).
	ConfigURL string
	// Profiling sends the services' continuous profiles to vigil at
	// ConfigURL (or VIGIL_URL), and is off without either. The four
	// services share the process's one profiler, and their requests'
	// samples are labelled with their names, so vigil files each under
	// its service.
	Profiling bool
	// Faults are the failures to switch on, by name (see Faults).
	Faults []string
	// Logger receives the demo's own messages (not the services' logs).
	// Nil means a text logger on stderr.
	Logger *slog.Logger
	// LogOutput receives the services' JSON log lines. Nil means os.Stdout.
	LogOutput io.Writer
}

// profileUploadRate is how often the shop sends its profiles: shorter than
// the SDK's 15 s, so that a fault shows in the flame graphs soon after the
// demo starts.
const profileUploadRate = 10 * time.Second

// DefaultPortBase is the gateway's port when Options.PortBase is zero.
const DefaultPortBase = 8100

// ErrUnknownFault is returned by Run for a fault name Faults does not list.
var ErrUnknownFault = errors.New("shop: unknown fault")

// ErrNoConfigCentre is returned by Run, before anything starts, for a
// fault that needs the configuration centre when Options.ConfigURL and
// VIGIL_URL are both empty.
var ErrNoConfigCentre = errors.New("shop: no configuration centre")

// ErrListen is returned by Run, before anything starts, when one of the
// four ports cannot be bound (typically another demo is using it). The
// error names the service and the port.
var ErrListen = errors.New("shop: cannot listen")

// The fault switches. Each reproduces a real failure; the comment says what
// it looks like in the telemetry.
const (
	// faultDropContext: the gateway calls catalog with a plain http.Client,
	// so no traceparent header is sent and catalog starts new traces.
	faultDropContext = "drop-context"
	// faultLogWithoutContext: orders logs with Logger.Info instead of
	// InfoContext, so its records carry no trace id.
	faultLogWithoutContext = "log-without-context"
	// faultSlowPayments: payments takes 300–800 ms per charge, the first
	// 40 ms of which burn CPU in scoreFraud, so that payments' CPU flame
	// graph shows the slow path.
	faultSlowPayments = "slow-payments"
	// faultErrors: every fifth charge fails with gRPC Unavailable, which
	// orders and then the gateway answer with 502.
	faultErrors = "errors"
	// faultPanic: catalog panics on every tenth product id.
	faultPanic = "panic"
	// faultUnregisteredMetrics: catalog serves /metrics from its own fresh
	// registry, without the SDK's runtime and RED collectors.
	faultUnregisteredMetrics = "unregistered-metrics"
	// faultClockSkew: catalog's clock runs minutes behind the others', so
	// its spans are stamped minutes before the calls that caused them.
	faultClockSkew = "clock-skew"
	// faultBadConfig: once the shop runs, a gray of BadSettings (a 1ms
	// processor timeout) on this demo's payments instance (by its instance
	// id, "payments@<its address>"), guarded by
	// BadConfigGuard: every charge of the cohort fails until the SLO
	// guard aborts the gray and payments is back on the formal settings.
	faultBadConfig = "bad-config"
)

var faultHelp = map[string]string{
	faultDropContext:         "gateway calls catalog without the SDK transport: catalog starts new traces",
	faultLogWithoutContext:   "orders logs without the request context: its logs carry no trace id",
	faultSlowPayments:        "payments takes 300-800ms per charge, 40ms of it burning CPU in scoreFraud (payments' CPU flame graph shows it)",
	faultErrors:              "every fifth charge fails (gRPC Unavailable): orders and gateway answer 502",
	faultPanic:               "catalog panics on GET /products/{id} for every tenth id",
	faultUnregisteredMetrics: "catalog serves /metrics from a fresh registry: runtime and RED series missing",
	faultClockSkew:           "catalog's clock runs 3 minutes behind: its spans are stamped 3 minutes before the calls that caused them",
	faultBadConfig:           "a gray of a 1ms payment timeout on this demo's payments instance, guarded by the SLO " + BadConfigGuard + ": charges fail until the guard aborts it",
}

// Faults returns the fault names Options.Faults accepts, sorted.
func Faults() []string {
	return slices.Sorted(maps.Keys(faultHelp))
}

// FaultHelp returns a one-line description of a fault, or "" for an unknown
// name.
func FaultHelp(name string) string { return faultHelp[name] }

// faultSet is the parsed Options.Faults.
type faultSet map[string]bool

func parseFaults(names []string) (faultSet, error) {
	fs := faultSet{}
	for _, n := range names {
		if _, ok := faultHelp[n]; !ok {
			return nil, fmt.Errorf("%w: %q (known: %v)", ErrUnknownFault, n, Faults())
		}
		fs[n] = true
	}
	return fs, nil
}

// Service names, also the service.name of every signal.
const (
	nameGateway  = "gateway"
	nameCatalog  = "catalog"
	nameOrders   = "orders"
	namePayments = "payments"
)

// shutdownGrace is each service's readiness-off grace period. Load
// balancers are what it waits for and the demo has none; Run stops the
// services callers first instead, so no request is cut off.
const shutdownGrace = 100 * time.Millisecond

// lockedWriter serialises writes: the four services' loggers each lock only
// their own handler, and an arbitrary io.Writer may not be safe for
// concurrent use.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// node is one running service: its telemetry, its servers and how to stop it.
type node struct {
	svc     *vigil.Service
	servers []*http.Server
	cleanup func() // after the servers have stopped
	cancel  context.CancelFunc
	done    chan struct{}
	err     error
}

// Run starts the four services and the load generator and blocks until ctx
// ends or a service fails, then shuts everything down gracefully, callers
// before callees (load generator, gateway, catalog and orders, payments), so
// that in-flight requests complete; each service's shutdown flushes its
// telemetry. It returns ErrUnknownFault, ErrNoConfigCentre or ErrListen (a
// port in use) before starting anything, and a service's serving error
// otherwise.
func Run(ctx context.Context, opts Options) error {
	faults, err := parseFaults(opts.Faults)
	if err != nil {
		return err
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	out := opts.LogOutput
	if out == nil {
		out = os.Stdout
	}
	out = &lockedWriter{w: out}
	base := opts.PortBase
	if base == 0 {
		base = DefaultPortBase
	}
	addr := func(i int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(base+i)) }

	configURL := opts.ConfigURL
	if configURL == "" {
		configURL = os.Getenv("VIGIL_URL")
	}
	if configURL == "" && faults[faultBadConfig] {
		return fmt.Errorf("%w: the fault %s needs one (Options.ConfigURL or VIGIL_URL)", ErrNoConfigCentre, faultBadConfig)
	}

	// Every port is bound before anything starts, so a port in use fails
	// Run at once with its number instead of after "shop running".
	lns, err := bindPorts(addr, []string{nameGateway, nameCatalog, nameOrders, namePayments})
	if err != nil {
		return err
	}
	closeListeners := func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}

	var api *configAPI
	if configURL != "" {
		api = newConfigAPI(configURL)
		switch seeded, err := api.seed(ctx); {
		case err != nil:
			logger.Warn("configuration centre: cannot check or seed the payments settings; payments uses the item if it can read it, else its defaults", "item", SettingsItem, "error", err.Error())
		case seeded:
			logger.Info("configuration centre: put the formal settings", "item", SettingsItem)
		}
	}

	// Start the services' telemetry, one vigil.Start each.
	svcs := map[string]*vigil.Service{}
	shutdownAll := func() {
		for _, s := range svcs {
			_ = s.Shutdown(context.WithoutCancel(ctx))
		}
	}
	for i, name := range []string{nameGateway, nameCatalog, nameOrders, namePayments} {
		cfg := vigil.Config{
			ServiceName:    name,
			ServiceVersion: "demo",
			Endpoint:       opts.OTLPEndpoint,
			Protocol:       opts.Protocol,
			LogOutput:      out,
			ShutdownGrace:  shutdownGrace,
			// The instance id the configuration centre knows it by: the
			// four services share a host, and two demos may share vigil.
			ConfigCentre: vigil.ConfigCentre{URL: configURL, Instance: configInstance(name, addr(i))},
			// /debug/pprof and /debug/snapshot on each service's port, for
			// vigil snapshot (docs/snapshots.md). The four share one
			// process, so one CPU profile runs at a time among them.
			Diagnostics: diag.Options{EnablePprof: true, EnableSnapshot: true},
		}
		if opts.Profiling && configURL != "" {
			// The first service starts the process's profiler, which
			// uploads under its name (gateway) what no request's
			// service_name label claims.
			cfg.Profiling = vigil.Profiling{Enabled: true, ServerAddress: configURL, UploadRate: profileUploadRate}
		}
		if configURL != "" {
			// Each instance registers with vigil's registry under the same
			// id, at its listener, while it serves (docs/registry.md).
			host, _, _ := net.SplitHostPort(addr(i))
			cfg.Registration = vigil.Registration{URL: configURL, ID: configInstance(name, addr(i)), Address: host}
		}
		if faults[faultClockSkew] && name == nameCatalog {
			cfg.WrapSpanExporter = func(e sdktrace.SpanExporter) sdktrace.SpanExporter { return skewedExporter{e, clockSkew} }
		}
		s, err := vigil.Start(ctx, cfg)
		if err != nil {
			closeListeners()
			shutdownAll()
			return fmt.Errorf("shop: start %s: %w", name, err)
		}
		svcs[name] = s
	}

	pay, err := newPayments(svcs[namePayments], addr(3), faults)
	if err != nil {
		closeListeners()
		shutdownAll()
		return err
	}
	ord, err := newOrders(svcs[nameOrders], addr(2), addr(3), faults)
	if err != nil {
		closeListeners()
		pay.cleanup()
		shutdownAll()
		return err
	}
	nodes := map[string]*node{
		nameGateway:  newGateway(svcs[nameGateway], addr(0), "http://"+addr(1), "http://"+addr(2), faults),
		nameCatalog:  newCatalog(svcs[nameCatalog], addr(1), faults),
		nameOrders:   ord,
		namePayments: pay,
	}

	failed := make(chan struct{}, len(nodes))
	for name, n := range nodes {
		var runCtx context.Context
		// Each service gets its own context so that Run can stop them in
		// order rather than all at once when ctx ends.
		runCtx, n.cancel = context.WithCancel(context.WithoutCancel(ctx))
		n.done = make(chan struct{})
		own := make([]net.Listener, len(n.servers))
		for i, srv := range n.servers {
			own[i] = lns[srv.Addr]
		}
		go func() {
			defer close(n.done)
			n.err = n.svc.Serve(runCtx, own, n.servers...)
			if n.err != nil {
				n.err = fmt.Errorf("shop: %s: %w", name, n.err)
				failed <- struct{}{}
			}
		}()
	}
	logger.Info("shop running",
		"gateway", "http://"+addr(0), "catalog", "http://"+addr(1),
		"orders", "http://"+addr(2), "payments", addr(3)+" (gRPC and HTTP)",
		"faults", slices.Sorted(maps.Keys(faults)), "rps", opts.RPS)
	if faults[faultBadConfig] {
		if v, err := api.startBadGray(ctx, configInstance(namePayments, addr(3))); err != nil {
			logger.Error("bad-config: the gray did not start", "item", SettingsItem, "error", err.Error())
		} else {
			logger.Warn("bad-config: gray started on this demo's payments instance; the SLO guard should abort it",
				"item", SettingsItem, "version", v, "instance", configInstance(namePayments, addr(3)), "guard", BadConfigGuard)
		}
	}

	loadCtx, stopLoad := context.WithCancel(ctx)
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		if opts.RPS > 0 {
			generateLoad(loadCtx, "http://"+addr(0), opts.RPS, logger)
		}
	}()

	select {
	case <-ctx.Done():
	case <-failed:
		logger.Error("a service failed; shutting down")
	}
	stopLoad()
	<-loadDone

	var errs []error
	for _, tier := range [][]string{{nameGateway}, {nameCatalog, nameOrders}, {namePayments}} {
		for _, name := range tier {
			nodes[name].cancel()
		}
		for _, name := range tier {
			n := nodes[name]
			<-n.done
			if n.cleanup != nil {
				n.cleanup()
			}
			if n.err != nil {
				errs = append(errs, n.err)
				// Service.Serve may return before flushing on an error;
				// flushing twice is harmless otherwise.
				_ = n.svc.Shutdown(context.WithoutCancel(ctx))
			}
		}
	}
	logger.Info("shop stopped")
	return errors.Join(errs...)
}

// bindPorts listens on addr(i) for each of names, all or none; the error
// wraps ErrListen and names the service and its port.
func bindPorts(addr func(int) string, names []string) (map[string]net.Listener, error) {
	lns := make(map[string]net.Listener, len(names))
	for i, name := range names {
		ln, err := net.Listen("tcp", addr(i))
		if err != nil {
			for _, l := range lns {
				_ = l.Close()
			}
			return nil, fmt.Errorf("%w: %s on %s: %w", ErrListen, name, addr(i), err)
		}
		lns[addr(i)] = ln
	}
	return lns, nil
}
