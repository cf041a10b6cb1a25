// Package vigil wires a Go service's telemetry in one call: OpenTelemetry
// traces and logs exported over OTLP, Prometheus RED and runtime metrics,
// a slog logger that stamps trace ids and redacts secrets, health endpoints,
// diagnostics and graceful shutdown, all from the official libraries and
// wired in the order that keeps spans, logs and metrics joined up.
//
//	svc, err := vigil.Start(ctx, vigil.Config{ServiceName: "checkout"})
//	if err != nil { ... }
//	defer svc.Shutdown(context.Background())
//	mux := http.NewServeMux()
//	mux.HandleFunc("GET /orders/{id}", getOrder)
//	svc.Mount(mux)                                // /metrics, /livez, /readyz, /healthz
//	err = svc.Run(ctx, svc.NewServer(":8080", mux)) // serves until SIGTERM, then drains
//
// Settings come from Config and from the standard OpenTelemetry variables
// (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_EXPORTER_OTLP_ENDPOINT,
// OTEL_EXPORTER_OTLP_PROTOCOL, OTEL_TRACES_SAMPLER and its argument); what
// the code sets wins over the environment.
package vigil

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/bridges/otelslog"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"

	"github.com/vigil-observability/vigil/sdk/diag"
	"github.com/vigil-observability/vigil/sdk/health"
	"github.com/vigil-observability/vigil/sdk/instrument"
	"github.com/vigil-observability/vigil/sdk/logging"
	"github.com/vigil-observability/vigil/sdk/metrics"
)

// Config configures Start. Every field is optional.
type Config struct {
	// ServiceName names the service in every signal (service.name, the
	// log "service" field, <service>_build_info). Empty means
	// OTEL_SERVICE_NAME; without either, vigil warns at start.
	ServiceName    string
	ServiceVersion string
	// Revision is the source revision for build_info, typically set with
	// -ldflags; empty reads it from the binary's build information.
	Revision string
	// ResourceAttributes are added to the OpenTelemetry resource.
	ResourceAttributes map[string]string

	// Endpoint is the OTLP endpoint, e.g. "http://localhost:4317" or
	// "collector:4317"; empty means OTEL_EXPORTER_OTLP_ENDPOINT, then
	// localhost on the protocol's port.
	Endpoint string
	// Protocol is ProtocolGRPC (default) or ProtocolHTTP; empty means
	// OTEL_EXPORTER_OTLP_PROTOCOL, then gRPC.
	Protocol string
	// Sampler decides which new traces are recorded. Nil means
	// OTEL_TRACES_SAMPLER when set, else parent-based always-on.
	Sampler sdktrace.Sampler
	// WrapSpanExporter, when set, wraps the OTLP span exporter, so that
	// spans can be filtered or rewritten before they leave the process
	// (the demo shop shifts one service's clock this way).
	WrapSpanExporter func(sdktrace.SpanExporter) sdktrace.SpanExporter

	// LogLevel is the minimum level logged (default Info).
	LogLevel slog.Leveler
	// LogOutput receives the JSON log lines (default os.Stdout).
	LogOutput io.Writer
	// RedactKeys and RedactPatterns extend the built-in redaction.
	RedactKeys     []string
	RedactPatterns []*regexp.Regexp
	// LogSampling, when set, thins repetitive records below warning level.
	LogSampling *logging.Sampling

	// Diagnostics enables /debug/pprof and /debug/snapshot on Mount. Off
	// by default: they expose internals.
	Diagnostics diag.Options

	// SelfCheckTimeout bounds the start-up probe of the OTLP endpoint
	// (default 1s).
	SelfCheckTimeout time.Duration
	// ShutdownGrace is how long Run keeps serving after readiness turns
	// off on SIGTERM, so that load balancers stop sending first (default 2s).
	ShutdownGrace time.Duration
	// FlushTimeout bounds Run's final export of buffered spans and logs
	// (default 5s), so that a collector that is already gone cannot hold
	// the process for the exporters' whole retry schedule.
	FlushTimeout time.Duration

	// ConfigCentre connects Service.Config to vigil's configuration
	// centre; nothing is fetched until the first Service.Config.
	ConfigCentre ConfigCentre
	// Registration registers the instance with vigil's service registry
	// while Run or Serve serves; off unless its URL is set or Enabled.
	Registration Registration

	// Profiling sends continuous profiles to vigil and links them to
	// spans (profiling.go). Off by default.
	Profiling Profiling

	getenv func(string) string // tests
}

func (c Config) attributes() []attribute.KeyValue {
	kv := make([]attribute.KeyValue, 0, len(c.ResourceAttributes))
	for k, v := range c.ResourceAttributes {
		kv = append(kv, attribute.String(k, v))
	}
	return kv
}

// Service is a started service's telemetry. Its fields are ready to use;
// its methods wire them into servers and clients.
type Service struct {
	// Name is the resolved service name.
	Name           string
	TracerProvider *sdktrace.TracerProvider
	LoggerProvider *sdklog.LoggerProvider
	// Logger writes redacted JSON with trace ids to LogOutput and exports
	// every record over OTLP. Start also makes it slog's default.
	Logger *slog.Logger
	// Registry holds the runtime, process, build_info and RED metrics that
	// Mount serves on /metrics; register the service's own metrics here.
	Registry *prometheus.Registry
	// Metrics are the RED histograms the middleware records.
	Metrics *instrument.Metrics
	// Health serves /livez, /readyz and /healthz; register checks on it.
	Health *health.Checker

	logHandler *logging.Handler
	cfg        Config
	// tracing creates the middleware's spans: TracerProvider, wrapped to
	// label profile samples when profiling is on.
	tracing trace.TracerProvider
	// stopProfiling leaves the process's shared profiler (profiling.go).
	stopProfiling func() error
	resource      *resource.Resource
	config        configState
	registration  registrationState
}

// Start builds and installs the service's telemetry: tracer and logger
// providers (also installed as OpenTelemetry's globals, with W3C trace
// context and baggage propagation), the metrics registry, the logger (also
// slog's default) and the health checker, not yet ready. Call Shutdown to
// flush and stop them.
func Start(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.getenv == nil {
		cfg.getenv = os.Getenv
	}
	if cfg.LogOutput == nil {
		cfg.LogOutput = os.Stdout
	}
	if cfg.SelfCheckTimeout <= 0 {
		cfg.SelfCheckTimeout = time.Second
	}
	if cfg.ShutdownGrace <= 0 {
		cfg.ShutdownGrace = 2 * time.Second
	}
	if cfg.FlushTimeout <= 0 {
		cfg.FlushTimeout = 5 * time.Second
	}
	target, err := resolveTarget(cfg, cfg.getenv)
	if err != nil {
		return nil, err
	}
	res, err := newResource(ctx, cfg)
	if err != nil {
		return nil, err
	}
	name, _ := res.Set().Value(semconv.ServiceNameKey)
	s := &Service{Name: name.AsString(), cfg: cfg, resource: res}

	spanExp, err := newSpanExporter(ctx, target)
	if err != nil {
		return nil, fmt.Errorf("vigil: span exporter: %w", err)
	}
	if cfg.WrapSpanExporter != nil {
		spanExp = cfg.WrapSpanExporter(spanExp)
	}
	tpOpts := []sdktrace.TracerProviderOption{sdktrace.WithBatcher(spanExp), sdktrace.WithResource(res)}
	if cfg.Sampler != nil {
		tpOpts = append(tpOpts, sdktrace.WithSampler(cfg.Sampler))
	} else if cfg.getenv("OTEL_TRACES_SAMPLER") == "" {
		tpOpts = append(tpOpts, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())))
	} // else the SDK reads OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG itself
	tpOpts = append(tpOpts, sdktrace.WithSpanProcessor(graySpanProcessor{}))
	s.TracerProvider = sdktrace.NewTracerProvider(tpOpts...)

	logExp, err := newLogExporter(ctx, target)
	if err != nil {
		_ = s.TracerProvider.Shutdown(ctx)
		return nil, fmt.Errorf("vigil: log exporter: %w", err)
	}
	s.LoggerProvider = sdklog.NewLoggerProvider(sdklog.WithProcessor(sdklog.NewBatchProcessor(logExp)), sdklog.WithResource(res))

	otel.SetTracerProvider(s.TracerProvider)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))

	s.logHandler = logging.NewHandler(cfg.LogOutput, logging.Options{
		Service:        s.Name,
		Level:          cfg.LogLevel,
		RedactKeys:     cfg.RedactKeys,
		RedactPatterns: cfg.RedactPatterns,
		Sampling:       cfg.LogSampling,
		Export:         otelslog.NewHandler(s.Name, otelslog.WithLoggerProvider(s.LoggerProvider)),
	})
	s.Logger = slog.New(grayLogHandler{configLogHandler{s.logHandler, &s.config}})
	slog.SetDefault(s.Logger)

	s.Registry = metrics.NewRegistry(metrics.RegistryOptions{Service: s.Name, Version: cfg.ServiceVersion, Revision: cfg.Revision})
	if s.Metrics, err = instrument.NewMetrics(s.Registry); err != nil {
		_ = s.shutdownProviders(ctx)
		return nil, fmt.Errorf("vigil: metrics: %w", err)
	}
	s.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "log_records_dropped_total",
		Help: "Log records dropped by sampling (never warnings or errors).",
	}, func() float64 { return float64(s.logHandler.Dropped()) }))
	s.Health = health.New(health.Options{Logger: s.Logger})
	s.tracing = s.TracerProvider
	if cfg.Profiling.Enabled {
		prof, tp, err := startProfiling(cfg.Profiling, s.Name, cfg.ServiceVersion, s.TracerProvider, s.Logger)
		if err != nil {
			_ = s.shutdownProviders(ctx)
			return nil, err
		}
		s.stopProfiling, s.tracing = prof, tp
		otel.SetTracerProvider(tp)
	}

	// The self-check: the two mistakes that make a service invisible.
	if serviceNameMissing(res) {
		s.Logger.Warn("vigil: no service name: set Config.ServiceName or OTEL_SERVICE_NAME, or every signal is filed under " + s.Name)
	}
	if err := reachable(ctx, target, cfg.SelfCheckTimeout); err != nil {
		s.Logger.Warn("vigil: OTLP endpoint unreachable; traces and logs will be buffered and dropped until it answers",
			"endpoint", target.endpoint, "protocol", target.protocol, "error", err.Error())
	}
	return s, nil
}

// Mount registers /metrics and the health endpoints on mux, and the
// diagnostics endpoints when Config.Diagnostics enables them.
func (s *Service) Mount(mux *http.ServeMux) {
	mux.Handle("GET /metrics", metrics.Handler(s.Registry))
	s.Health.Mount(mux)
	d := s.cfg.Diagnostics
	if d.ContinuousProfiler == nil {
		// Even without Profiling of its own: another service of the
		// process may have started the shared profiler.
		d.ContinuousProfiler = processProfiler.describe
	}
	diag.Mount(mux, d)
}

// Middleware instruments an HTTP handler: a server span named by the route
// template, RED metrics, panics recorded on the span (which always ends).
// A request with an X-Gray header (or vigil.gray baggage) keeps that colour
// on its spans and logs and on the calls it makes (see GrayHeader).
//
// With profiling on, the request also runs under the pprof label
// service_name=<Name>, so that the samples of services sharing one process
// (and its one profiler) are filed under each's own name.
func (s *Service) Middleware(next http.Handler) http.Handler {
	h := colourRequests(instrument.Middleware(s.Metrics, instrument.HTTPOptions{TracerProvider: s.tracing})(next))
	if s.cfg.Profiling.Enabled {
		h = labelRequests(s.Name, h)
	}
	return h
}

// Transport instruments outbound HTTP calls: a client span, trace context
// injected into the request, client RED metrics. Nil base means
// http.DefaultTransport.
func (s *Service) Transport(base http.RoundTripper) http.RoundTripper {
	return instrument.Transport(base, s.Metrics, instrument.HTTPOptions{TracerProvider: s.tracing})
}

// HTTPClient returns a client whose calls are instrumented by Transport.
func (s *Service) HTTPClient() *http.Client {
	return &http.Client{Transport: s.Transport(nil)}
}

// GRPCServerOptions instrument a gRPC server (spans, RED metrics, panics
// turned into codes.Internal and recorded).
//
// With profiling on, calls also run under the pprof label
// service_name=<Name>, as with Middleware.
func (s *Service) GRPCServerOptions() []grpc.ServerOption {
	opts := instrument.ServerOptions(s.Metrics, instrument.GRPCOptions{TracerProvider: s.tracing})
	if s.cfg.Profiling.Enabled {
		opts = append(opts, labelGRPC(s.Name)...)
	}
	return opts
}

// GRPCDialOptions instrument a gRPC client connection.
func (s *Service) GRPCDialOptions() []grpc.DialOption {
	return instrument.DialOptions(s.Metrics, instrument.GRPCOptions{TracerProvider: s.tracing})
}

// NewServer returns an http.Server with timeouts that keep slow or idle
// clients from holding it: the zero-value server has none. The handler is
// wrapped in Middleware.
func (s *Service) NewServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           s.Middleware(h),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.Logger.Handler(), slog.LevelWarn),
	}
}

// Run serves on every server, marks the service ready, and on ctx's end or
// SIGTERM/SIGINT shuts down gracefully: readiness off, ShutdownGrace for
// load balancers to notice, in-flight requests drained, then the telemetry
// flushed by Shutdown. It returns the first serving error, if any.
func (s *Service) Run(ctx context.Context, servers ...*http.Server) error {
	return s.run(ctx, servers, notifyShutdown)
}

// Serve is Run on listeners bound by the caller: servers[i] serves lns[i]
// (their Addr is not used). Binding first lets a program that runs several
// services find a port in use before it starts any of them or says it runs;
// Run would report it only once running. Serve closes the listeners.
func (s *Service) Serve(ctx context.Context, lns []net.Listener, servers ...*http.Server) error {
	return s.serve(ctx, lns, servers, notifyShutdown)
}

// Shutdown turns readiness off, deregisters the instance from vigil's
// registry, stops the configuration watches, and flushes and stops the
// exporters: every span and log record buffered so far is sent.
func (s *Service) Shutdown(ctx context.Context) error {
	s.Health.Shutdown()
	s.closeRegistration(ctx)
	s.closeConfig()
	return s.shutdownProviders(ctx)
}

func (s *Service) shutdownProviders(ctx context.Context) error {
	var perr error
	if s.stopProfiling != nil {
		// The last service to leave sends the profile of the last interval.
		perr = s.stopProfiling()
		s.stopProfiling = nil
	}
	return errors.Join(perr, s.TracerProvider.Shutdown(ctx), s.LoggerProvider.Shutdown(ctx))
}
