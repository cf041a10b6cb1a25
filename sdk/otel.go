package vigil

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// Protocols for Config.Protocol, spelled as OTEL_EXPORTER_OTLP_PROTOCOL spells them.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http/protobuf"
)

// ErrInvalidConfig wraps every configuration error Start reports.
var ErrInvalidConfig = errors.New("vigil: invalid configuration")

// exportTarget is where telemetry goes, after code and environment are merged.
type exportTarget struct {
	protocol string
	// endpoint is a URL (scheme decides TLS), e.g. http://localhost:4317.
	endpoint string
}

// resolveTarget merges Config with the standard OTEL_* variables. Code wins
// over the environment, which wins over the defaults (gRPC to localhost).
func resolveTarget(cfg Config, getenv func(string) string) (exportTarget, error) {
	t := exportTarget{protocol: cfg.Protocol, endpoint: cfg.Endpoint}
	if t.protocol == "" {
		t.protocol = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	if t.protocol == "" {
		t.protocol = ProtocolGRPC
	}
	if t.protocol != ProtocolGRPC && t.protocol != ProtocolHTTP {
		return t, fmt.Errorf("%w: protocol %q: use %q or %q", ErrInvalidConfig, t.protocol, ProtocolGRPC, ProtocolHTTP)
	}
	if t.endpoint == "" {
		t.endpoint = getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
	}
	if t.endpoint == "" {
		t.endpoint = "http://localhost:4317"
		if t.protocol == ProtocolHTTP {
			t.endpoint = "http://localhost:4318"
		}
	}
	if !strings.Contains(t.endpoint, "://") {
		t.endpoint = "http://" + t.endpoint // host:port, as people often write it
	}
	u, err := url.Parse(t.endpoint)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return t, fmt.Errorf("%w: endpoint %q: want http(s)://host:port", ErrInvalidConfig, t.endpoint)
	}
	return t, nil
}

// host returns the endpoint's host:port, with the scheme's default port.
func (t exportTarget) host() string {
	u, _ := url.Parse(t.endpoint)
	if u.Port() != "" {
		return u.Host
	}
	if u.Scheme == "https" {
		return net.JoinHostPort(u.Hostname(), "443")
	}
	return net.JoinHostPort(u.Hostname(), "80")
}

// newResource describes the service: OTEL_RESOURCE_ATTRIBUTES and
// OTEL_SERVICE_NAME first, then what the code says, which wins.
func newResource(ctx context.Context, cfg Config) (*resource.Resource, error) {
	attrs := cfg.attributes()
	if cfg.ServiceName != "" {
		attrs = append(attrs, semconv.ServiceName(cfg.ServiceName))
	}
	if cfg.ServiceVersion != "" {
		attrs = append(attrs, semconv.ServiceVersion(cfg.ServiceVersion))
	}
	res, err := resource.New(ctx,
		resource.WithFromEnv(),
		resource.WithTelemetrySDK(),
		resource.WithHost(),
		resource.WithProcessPID(),
		resource.WithProcessRuntimeVersion(),
		resource.WithAttributes(attrs...),
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("vigil: resource: %w", err)
	}
	// Default supplies service.name=unknown_service:<binary> when nobody
	// set one, as the specification asks; both use the SDK's semconv
	// version, so their schema URLs agree.
	return resource.Merge(resource.Default(), res)
}

func newSpanExporter(ctx context.Context, t exportTarget) (sdktrace.SpanExporter, error) {
	if t.protocol == ProtocolHTTP {
		return otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(t.endpoint+"/v1/traces"))
	}
	return otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(t.endpoint))
}

func newLogExporter(ctx context.Context, t exportTarget) (sdklog.Exporter, error) {
	if t.protocol == ProtocolHTTP {
		return otlploghttp.New(ctx, otlploghttp.WithEndpointURL(t.endpoint+"/v1/logs"))
	}
	return otlploggrpc.New(ctx, otlploggrpc.WithEndpointURL(t.endpoint))
}

// reachable reports whether a TCP connection to the exporter's endpoint
// opens within timeout; the start-up self-check warns when it does not.
func reachable(ctx context.Context, t exportTarget, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", t.host())
	if err != nil {
		return err
	}
	return conn.Close()
}

// serviceNameMissing reports whether the resource carries only the SDK's
// "unknown_service" placeholder, which makes every signal hard to find.
func serviceNameMissing(res *resource.Resource) bool {
	v, ok := res.Set().Value(semconv.ServiceNameKey)
	return !ok || strings.HasPrefix(v.AsString(), "unknown_service")
}
