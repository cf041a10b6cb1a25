package instrument

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// HTTPOptions configures Middleware and Transport.
type HTTPOptions struct {
	// TracerProvider creates the spans. Nil means otel.GetTracerProvider()
	// at request time (otelhttp's default).
	TracerProvider trace.TracerProvider
	// Propagators extract (server) and inject (client) the trace context.
	// Nil means otel.GetTextMapPropagator().
	Propagators propagation.TextMapPropagator
	// MeterProvider receives otelhttp's own OpenTelemetry metrics. Nil means
	// a no-op provider: RED metrics already come from Metrics, and recording
	// both would double the cost and the series.
	MeterProvider metric.MeterProvider
	// ServerName is the server.address span attribute of server spans (the
	// virtual host name). Empty means the request's Host. Unused by Transport.
	ServerName string
	// Route, when set, is the route template of every request the wrapped
	// handler serves; use it when wrapping one handler per route instead of
	// a whole router. It takes precedence over the ServeMux pattern.
	// Unused by Transport.
	Route string
	// Filter, when set, is asked about every server request; requests for
	// which it returns false (health checks, /metrics) get neither a span
	// nor metrics. Unused by Transport.
	Filter func(*http.Request) bool
}

func (o HTTPOptions) otelOptions() []otelhttp.Option {
	mp := o.MeterProvider
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	opts := []otelhttp.Option{otelhttp.WithMeterProvider(mp)}
	if o.TracerProvider != nil {
		opts = append(opts, otelhttp.WithTracerProvider(o.TracerProvider))
	}
	if o.Propagators != nil {
		opts = append(opts, otelhttp.WithPropagators(o.Propagators))
	}
	return opts
}

// Middleware returns a middleware that traces each request with
// otelhttp.NewHandler and records http_server_request_duration_seconds.
//
// Span name and route: the route template is only known once the router has
// run, so the span starts as "METHOD" and is renamed "METHOD /route" after
// the wrapped handler returns, when http.route is also set. The route is,
// in order: SetRoute called during the request, HTTPOptions.Route, the
// pattern of the Go 1.22 http.ServeMux that matched (method and host prefix
// stripped: "GET /items/{id}" gives "/items/{id}"), else "unmatched" (the
// span keeps the bare method name, following the OpenTelemetry HTTP
// conventions). ServeMux records the pattern on the *http.Request it is
// given, so a middleware placed between this one and the mux that replaces
// the request (r.WithContext) hides it: put this middleware directly around
// the mux, or call SetRoute from the handler. Non-standard methods are
// "_OTHER" in metrics and "HTTP" in span names.
//
// Panics: a panic in the wrapped handler is recorded on the span (an
// "exception" event with the stack trace, and an Error status), observed in
// the histogram with status_code "500", the span is ended, and then the panic
// is re-raised unchanged. This middleware deliberately does not swallow
// panics: http.Server's own recovery (which logs the stack and closes the
// connection) and any recovery middleware outside this one keep working.
//
// m may be nil, in which case only spans are produced.
func Middleware(m *Metrics, opts HTTPOptions) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		sh := &serverHandler{next: next, m: m, route: opts.Route}
		otelOpts := append(opts.otelOptions(), otelhttp.WithSpanNameFormatter(sh.spanName))
		if opts.ServerName != "" {
			otelOpts = append(otelOpts, otelhttp.WithServerName(opts.ServerName))
		}
		traced := otelhttp.NewHandler(sh, "", otelOpts...)
		if opts.Filter == nil {
			return traced
		}
		filter := opts.Filter
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !filter(r) {
				next.ServeHTTP(w, r)
				return
			}
			traced.ServeHTTP(w, r)
		})
	}
}

// routeKey is the context key of the per-request *requestState.
type routeKey struct{}

// requestState is what the server middleware tracks for one request. It is
// also the ResponseWriter the wrapped handler sees, so that one allocation
// holds the status, the route set via SetRoute and the writer wrapper.
//
// Rather than generating a type per interface combination (httpsnoop), it
// always offers Flush, Hijack and ReadFrom, delegating to the wrapped writer
// through http.ResponseController semantics; the writer it wraps is otelhttp's
// own httpsnoop wrapper, which exposes exactly what the server's writer has.
// Unwrap lets http.ResponseController reach the original writer.
type requestState struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
	route       string
}

// WriteHeader implements http.ResponseWriter.
func (st *requestState) WriteHeader(code int) {
	st.writeHeader(code)
	st.ResponseWriter.WriteHeader(code)
}

// Write implements http.ResponseWriter.
func (st *requestState) Write(b []byte) (int, error) {
	st.writeHeader(http.StatusOK)
	return st.ResponseWriter.Write(b)
}

// ReadFrom keeps io.Copy's sendfile path of the underlying writer.
func (st *requestState) ReadFrom(src io.Reader) (int64, error) {
	st.writeHeader(http.StatusOK)
	if rf, ok := st.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	// Hide our own ReadFrom from io.Copy, which would recurse.
	return io.Copy(writerOnly{st.ResponseWriter}, src)
}

// writerOnly exposes only Write.
type writerOnly struct{ io.Writer }

// Flush implements http.Flusher; it is a no-op when the underlying writer
// cannot flush, as http.Flusher has no way to report that.
func (st *requestState) Flush() {
	st.writeHeader(http.StatusOK)
	_ = http.NewResponseController(st.ResponseWriter).Flush()
}

// Hijack implements http.Hijacker, failing with http.ErrNotSupported when the
// underlying writer (e.g. HTTP/2) cannot be hijacked.
func (st *requestState) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(st.ResponseWriter).Hijack()
}

// Unwrap returns the wrapped writer, for http.ResponseController.
func (st *requestState) Unwrap() http.ResponseWriter { return st.ResponseWriter }

// SetRoute sets the route template reported for the request whose context is
// ctx, overriding HTTPOptions.Route and the ServeMux pattern. Routers other
// than http.ServeMux (or handlers behind request-replacing middlewares) call
// it with their matched template, e.g. "/users/{id}" - never the raw path.
// It reports whether ctx belongs to a request served by Middleware.
func SetRoute(ctx context.Context, route string) bool {
	st, ok := ctx.Value(routeKey{}).(*requestState)
	if ok {
		st.route = route
	}
	return ok
}

// serverHandler runs inside otelhttp's handler, so the request context
// already carries the server span.
type serverHandler struct {
	next  http.Handler
	m     *Metrics
	route string
}

// routeOf returns the route template of r, or "" when there is none.
func (h *serverHandler) routeOf(r *http.Request, st *requestState) string {
	if st != nil && st.route != "" {
		return st.route
	}
	if h.route != "" {
		return h.route
	}
	// A pattern is "[METHOD ][HOST]/path"; the route is the path part.
	if i := strings.IndexByte(r.Pattern, '/'); i >= 0 {
		return r.Pattern[i:]
	}
	return ""
}

// spanName is the otelhttp span name formatter. otelhttp calls it when the
// span starts and again after the handler if it sees a pattern, so it must
// agree with the name set in ServeHTTP.
func (h *serverHandler) spanName(_ string, r *http.Request) string {
	st, _ := r.Context().Value(routeKey{}).(*requestState)
	return spanName(r.Method, h.routeOf(r, st))
}

// spanName follows the OpenTelemetry HTTP conventions: "{method} {route}",
// or "{method}" alone when the route is unknown, with "HTTP" standing in for
// non-standard methods.
func spanName(method, route string) string {
	m := methodLabel(method)
	if m == MethodOther {
		m = "HTTP"
	}
	if route == "" {
		return m
	}
	return m + " " + route
}

func (h *serverHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if h.m != nil {
		h.m.httpServerInFlight.Inc()
	}
	st := &requestState{ResponseWriter: w}
	r = r.WithContext(context.WithValue(r.Context(), routeKey{}, st))
	w = st

	// Deferred so that it also runs while a panic unwinds; see Middleware.
	defer func() {
		rec := recover()
		span := trace.SpanFromContext(r.Context())
		route := h.routeOf(r, st)
		span.SetName(spanName(r.Method, route))
		if route != "" {
			span.SetAttributes(semconv.HTTPRoute(route))
		}
		status := st.status
		if status == 0 {
			status = http.StatusOK // net/http's implicit status
		}
		if rec != nil {
			status = http.StatusInternalServerError
			recordPanic(span, rec)
		}
		if h.m != nil {
			h.m.httpServerInFlight.Dec()
			if route == "" {
				route = RouteUnmatched
			}
			h.m.httpServerDuration.WithLabelValues(methodLabel(r.Method), route, statusLabel(status)).
				Observe(time.Since(start).Seconds())
		}
		if rec != nil {
			// otelhttp also ends the span from its own defer; ending it here
			// does not depend on that, and a second End is a no-op.
			span.End()
			panic(rec)
		}
	}()
	h.next.ServeHTTP(w, r)
}

// writeHeader latches the final status code. Informational 1xx responses
// (other than 101, which ends the HTTP exchange) precede the real one.
func (st *requestState) writeHeader(code int) {
	if st.wroteHeader || (code >= 100 && code < 200 && code != http.StatusSwitchingProtocols) {
		return
	}
	st.status, st.wroteHeader = code, true
}

// Transport returns a RoundTripper that traces each request with
// otelhttp.NewTransport (injecting the trace context into the headers) and
// records http_client_request_duration_seconds{method,peer,status_code}.
// Client spans are named after the method ("GET"; "HTTP" for non-standard
// methods) as the OpenTelemetry HTTP conventions ask, and end when the
// response body is closed or fully read.
// The duration ends when RoundTrip returns, i.e. at the response headers; a
// request without response has status_code "error". peer is the host:port
// dialed (default port from the scheme when the URL has none), which is
// bounded by the set of services the client talks to. base nil means
// http.DefaultTransport; m nil means spans only.
func Transport(base http.RoundTripper, m *Metrics, opts HTTPOptions) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	// otelhttp names client spans "HTTP GET"; the OpenTelemetry HTTP
	// conventions (and the server side here) use the bare method.
	traced := otelhttp.NewTransport(base, append(opts.otelOptions(),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			return spanName(r.Method, "")
		}))...)
	if m == nil {
		return traced
	}
	return &clientTransport{next: traced, m: m}
}

type clientTransport struct {
	next http.RoundTripper
	m    *Metrics
}

// RoundTrip implements http.RoundTripper.
func (t *clientTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	t.m.httpClientInFlight.Inc()
	defer t.m.httpClientInFlight.Dec()
	resp, err := t.next.RoundTrip(req)
	status := StatusError
	if err == nil {
		status = statusLabel(resp.StatusCode)
	}
	t.m.httpClientDuration.WithLabelValues(methodLabel(req.Method), peerOf(req), status).
		Observe(time.Since(start).Seconds())
	return resp, err
}

// peerOf returns the host:port a request goes to.
func peerOf(req *http.Request) string {
	u := req.URL
	if u == nil {
		return ""
	}
	if u.Port() != "" {
		return u.Host
	}
	port := "80"
	if u.Scheme == "https" {
		port = "443"
	}
	return net.JoinHostPort(u.Hostname(), port)
}
