// Package metrics builds the Prometheus registry a vigil-instrumented service
// exposes on /metrics: Go runtime and process collectors, a per-service
// build_info gauge, and the HTTP handler that serves them.
package metrics

import (
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// unknown fills build_info labels whose value could not be determined, so the
// series always has the same label set.
const unknown = "unknown"

// fallbackPrefix is the metric name prefix used when the service name has no
// usable characters; it mirrors OpenTelemetry's default service.name.
const fallbackPrefix = "unknown_service"

// RegistryOptions configures NewRegistry.
type RegistryOptions struct {
	// Service is the service name; sanitized, it prefixes the build_info
	// metric (<service>_build_info). Empty means "unknown_service".
	Service string
	// Version overrides the version label. When empty it is read from the
	// main module version in runtime/debug.ReadBuildInfo. Set it from
	// -ldflags when the binary is not built from a tagged module.
	Version string
	// Revision overrides the revision label. When empty it is read from the
	// vcs.revision build setting (absent with -buildvcs=false).
	Revision string
}

// NewRegistry returns a fresh registry (never the global default one) holding
// the Go runtime collector, the process collector and a
// <service>_build_info{version,revision,goversion} gauge set to 1.
func NewRegistry(opts RegistryOptions) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newBuildInfo(opts, debug.ReadBuildInfo),
	)
	return reg
}

// newBuildInfo builds the build_info gauge. readBuildInfo is a parameter so
// tests can feed synthetic build information.
func newBuildInfo(opts RegistryOptions, readBuildInfo func() (*debug.BuildInfo, bool)) prometheus.Gauge {
	version, revision, goVersion := opts.Version, opts.Revision, runtime.Version()
	if bi, ok := readBuildInfo(); ok && bi != nil {
		if version == "" {
			version = bi.Main.Version
		}
		if revision == "" {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" {
					revision = s.Value
				}
			}
		}
		if bi.GoVersion != "" {
			goVersion = bi.GoVersion
		}
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: metricPrefix(opts.Service) + "_build_info",
		Help: "Build information of the service; the value is always 1.",
		ConstLabels: prometheus.Labels{
			"version":   orUnknown(version),
			"revision":  orUnknown(revision),
			"goversion": orUnknown(goVersion),
		},
	})
	g.Set(1)
	return g
}

func orUnknown(s string) string {
	if s == "" {
		return unknown
	}
	return s
}

// metricPrefix turns a free-form service name into a valid metric name
// prefix: lowercase, every rune outside [a-z0-9_] replaced by '_', and a
// leading digit prefixed with '_' because metric names cannot start with one.
// Colons are legal in metric names but reserved for recording rules, so they
// are replaced too.
func metricPrefix(service string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(service)) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	s := b.String()
	if strings.Trim(s, "_") == "" {
		return fallbackPrefix
	}
	if s[0] >= '0' && s[0] <= '9' {
		s = "_" + s
	}
	return s
}

// HandlerOptions configures HandlerWithOptions.
type HandlerOptions struct {
	// Logger receives gathering errors. Nil means slog.Default().
	Logger *slog.Logger
}

// Handler serves g on /metrics; it is HandlerWithOptions with zero options,
// so gathering errors go to slog.Default().
func Handler(g prometheus.Gatherer) http.Handler {
	return HandlerWithOptions(g, HandlerOptions{})
}

// HandlerWithOptions serves g in the Prometheus text format, or in
// OpenMetrics when the scraper asks for it (needed for exemplars and created
// timestamps). A collector that fails does not blank the whole scrape: the
// error is logged and the metrics that were gathered are still served.
func HandlerWithOptions(g prometheus.Gatherer, opts HandlerOptions) http.Handler {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:          slogPrinter{logger: logger},
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
	})
}

// slogPrinter adapts a *slog.Logger to promhttp.Logger, which only offers
// Println.
type slogPrinter struct{ logger *slog.Logger }

// Println logs v as one error record.
func (p slogPrinter) Println(v ...any) {
	p.logger.Error("metrics: serving /metrics", "error", strings.TrimSuffix(fmt.Sprintln(v...), "\n"))
}
