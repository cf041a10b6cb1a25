// Package instrument adds RED (rate, errors, duration) instrumentation to
// HTTP and gRPC servers and clients: spans come from the OpenTelemetry
// contrib instrumentations otelhttp and otelgrpc, metrics are Prometheus
// histograms registered on a caller-supplied prometheus.Registerer.
//
// Every label is bounded: HTTP methods outside the standard set fold to
// "_OTHER", server routes are route templates (never raw paths), client peers
// are host:port of the services a client calls, and gRPC labels are the
// registered service/method names and status codes.
package instrument

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// ErrNilRegisterer is returned by NewMetrics when it is given no registerer;
// the SDK never falls back to prometheus.DefaultRegisterer.
var ErrNilRegisterer = errors.New("instrument: nil prometheus.Registerer")

// DefaultBuckets are the latency histogram buckets, in seconds, from 5ms to
// 10s: request latencies of interactive services sit in this range, and a
// request slower than 10s is an outage whichever bucket it lands in.
var DefaultBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Label values used when the real value is unknown or unbounded.
const (
	// MethodOther replaces HTTP methods outside the standard set.
	MethodOther = "_OTHER"
	// RouteUnmatched is the route label of requests no route template
	// matched (for example ServeMux 404s), so scanners probing random paths
	// cannot create series.
	RouteUnmatched = "unmatched"
	// StatusError is the client status_code label of a request that got no
	// HTTP response at all (dial failure, timeout, cancelled context).
	StatusError = "error"
)

// Metrics holds the RED collectors shared by Middleware, Transport,
// ServerOptions and DialOptions. Create it once per registry with NewMetrics;
// it is safe for concurrent use.
type Metrics struct {
	httpServerDuration *prometheus.HistogramVec
	httpServerInFlight prometheus.Gauge
	httpClientDuration *prometheus.HistogramVec
	httpClientInFlight prometheus.Gauge
	grpcServerDuration *prometheus.HistogramVec
	grpcServerInFlight prometheus.Gauge
	grpcClientDuration *prometheus.HistogramVec
	grpcClientInFlight prometheus.Gauge
}

// NewMetrics creates and registers on reg:
//
//	http_server_request_duration_seconds{method,route,status_code}   histogram
//	http_server_requests_in_flight                                   gauge
//	http_client_request_duration_seconds{method,peer,status_code}    histogram
//	http_client_requests_in_flight                                   gauge
//	grpc_server_handling_seconds{grpc_service,grpc_method,grpc_code} histogram
//	grpc_server_requests_in_flight                                   gauge
//	grpc_client_handling_seconds{grpc_service,grpc_method,grpc_code} histogram
//	grpc_client_requests_in_flight                                   gauge
//
// Registration is all or nothing: if one collector fails to register (for
// example because NewMetrics already ran on reg) the ones registered before it
// are unregistered and the error, wrapping prometheus' own, is returned.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	if reg == nil {
		return nil, ErrNilRegisterer
	}
	hist := func(name, help string, labels ...string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: name, Help: help, Buckets: DefaultBuckets,
		}, labels)
	}
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	}
	m := &Metrics{
		httpServerDuration: hist("http_server_request_duration_seconds",
			"Duration of HTTP requests handled by the server, by route template.",
			"method", "route", "status_code"),
		httpServerInFlight: gauge("http_server_requests_in_flight",
			"HTTP requests currently being handled by the server."),
		httpClientDuration: hist("http_client_request_duration_seconds",
			"Duration of outgoing HTTP requests until response headers arrived, by peer host:port.",
			"method", "peer", "status_code"),
		httpClientInFlight: gauge("http_client_requests_in_flight",
			"Outgoing HTTP requests currently waiting for response headers."),
		grpcServerDuration: hist("grpc_server_handling_seconds",
			"Duration of gRPC calls handled by the server, until the handler returned.",
			"grpc_service", "grpc_method", "grpc_code"),
		grpcServerInFlight: gauge("grpc_server_requests_in_flight",
			"gRPC calls currently being handled by the server."),
		grpcClientDuration: hist("grpc_client_handling_seconds",
			"Duration of outgoing gRPC call attempts, until the call finished.",
			"grpc_service", "grpc_method", "grpc_code"),
		grpcClientInFlight: gauge("grpc_client_requests_in_flight",
			"Outgoing gRPC call attempts currently in progress."),
	}
	all := []prometheus.Collector{
		m.httpServerDuration, m.httpServerInFlight,
		m.httpClientDuration, m.httpClientInFlight,
		m.grpcServerDuration, m.grpcServerInFlight,
		m.grpcClientDuration, m.grpcClientInFlight,
	}
	for i, c := range all {
		if err := reg.Register(c); err != nil {
			for _, done := range all[:i] {
				reg.Unregister(done)
			}
			return nil, fmt.Errorf("instrument: registering metrics: %w", err)
		}
	}
	return m, nil
}

// standardMethods are the methods of RFC 9110 plus PATCH; anything else is a
// client-chosen string and would make the method label unbounded.
var standardMethods = map[string]bool{
	"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true,
	"DELETE": true, "CONNECT": true, "OPTIONS": true, "TRACE": true,
}

// methodLabel bounds the HTTP method label. Methods are case-sensitive
// (RFC 9110 §9.1), so "get" is not GET and folds to _OTHER.
func methodLabel(method string) string {
	if method == "" {
		return "GET" // net/http: an empty client Method means GET.
	}
	if standardMethods[method] {
		return method
	}
	return MethodOther
}

// statusCodes caches the decimal form of the valid HTTP status codes so the
// hot path does not allocate a string per request.
var statusCodes = func() (s [600]string) {
	for i := 100; i < len(s); i++ {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

func statusLabel(code int) string {
	if code >= 100 && code < len(statusCodes) {
		return statusCodes[code]
	}
	return strconv.Itoa(code)
}
