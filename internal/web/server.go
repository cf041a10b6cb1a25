// Package web serves vigil's HTTP address: health and readiness, vigil's own
// metrics, the APIs mounted by cmd/vigil once storage is open, and the web UI
// on every other path.
package web

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Options configures the server.
type Options struct {
	Logger *slog.Logger
	// Gatherer serves /metrics; nil means no /metrics endpoint.
	Gatherer prometheus.Gatherer
	// UI answers GET and HEAD of every path outside the APIs (see apiPath),
	// before and after SetReady: the web UI and its client-side routes. It
	// sets its own Content-Security-Policy. nil: those paths answer like
	// unknown API paths.
	UI http.Handler
}

// Server is the HTTP handler for the UI/API address. Routes may be mounted
// while it is serving; until SetReady, every path not yet mounted answers
// 503 so that clients arriving during WAL replay are told to retry.
type Server struct {
	mux   *http.ServeMux
	ready atomic.Bool
	// stopping turns /-/ready to 503 once shutdown begins, so a load
	// balancer sends new requests elsewhere while this one drains.
	stopping atomic.Bool
	// readyCheck, when set, is one more condition of /-/ready, checked
	// after storage (a clustered node's known leader).
	readyCheck atomic.Pointer[func() error]
	logger     *slog.Logger
	ui         http.Handler
	// root is an API served at the root beside the UI (HandleRoot).
	root atomic.Pointer[rootAPI]

	routesMu sync.Mutex
	routes   []string // every pattern mounted, for GET /-/routes
}

// New returns a server with /-/healthy, /-/ready, /metrics and the UI routed.
func New(opts Options) *Server {
	s := &Server{mux: http.NewServeMux(), logger: opts.Logger, ui: opts.UI}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	s.Handle("GET /-/healthy", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("vigil is Healthy.\n"))
	}))
	s.Handle("GET /-/ready", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := s.NotReady(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("vigil is not ready: " + err.Error() + "\n"))
			return
		}
		_, _ = w.Write([]byte("vigil is Ready.\n"))
	}))
	if opts.Gatherer != nil {
		s.Handle("GET /metrics", promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{}))
	}
	s.Handle("GET /-/routes", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": s.Routes()})
	}))
	s.Handle("/", http.HandlerFunc(s.fallback))
	return s
}

// Handle mounts h at pattern (http.ServeMux syntax). It is safe to call
// while serving.
func (s *Server) Handle(pattern string, h http.Handler) {
	s.routesMu.Lock()
	s.routes = append(s.routes, pattern)
	s.routesMu.Unlock()
	s.mux.Handle(pattern, h)
}

// Routes returns every pattern mounted so far, sorted. GET /-/routes serves
// it, so that a test can check each route of a running server (for
// example that none is reachable without credentials).
func (s *Server) Routes() []string {
	s.routesMu.Lock()
	defer s.routesMu.Unlock()
	r := slices.Clone(s.routes)
	slices.Sort(r)
	return r
}

// rootAPI is an API that shares the listener's root with the UI.
type rootAPI struct {
	claims func(*http.Request) bool
	h      http.Handler
}

// HandleRoot serves with h the requests claims accepts among those no
// pattern is mounted for, before the UI sees them: an API whose clients
// call the listener's root and paths of their own there (Elasticsearch's
// agents call "/", "/_bulk", "/_license"). Paths of vigil's APIs (see
// apiPath) are never passed to it. It is safe to call while serving.
func (s *Server) HandleRoot(claims func(*http.Request) bool, h http.Handler) {
	s.root.Store(&rootAPI{claims: claims, h: h})
}

// MountPprof serves net/http/pprof under /debug/pprof/. The caller decides
// who may reach it (an admin endpoint: profiles reveal internals and cost
// CPU).
func (s *Server) MountPprof() {
	s.Handle("GET /debug/pprof/", http.HandlerFunc(pprof.Index))
	s.Handle("GET /debug/pprof/cmdline", http.HandlerFunc(pprof.Cmdline))
	s.Handle("GET /debug/pprof/profile", http.HandlerFunc(pprof.Profile))
	s.Handle("GET /debug/pprof/symbol", http.HandlerFunc(pprof.Symbol))
	s.Handle("POST /debug/pprof/symbol", http.HandlerFunc(pprof.Symbol))
	s.Handle("GET /debug/pprof/trace", http.HandlerFunc(pprof.Trace))
}

// SetReady marks storage open and every API mounted.
func (s *Server) SetReady() { s.ready.Store(true) }

// SetReadyCheck adds a condition to /-/ready: while check returns an
// error, /-/ready answers 503 with it. Only /-/ready consults it; the APIs
// keep answering, since a node can serve its own data without it.
func (s *Server) SetReadyCheck(check func() error) { s.readyCheck.Store(&check) }

// SetStopping marks the start of shutdown: /-/ready answers 503 from now
// on, while the APIs keep answering the requests that still arrive.
func (s *Server) SetStopping() { s.stopping.Store(true) }

// NotReady says why /-/ready answers 503, or returns nil when it answers
// 200. Other readiness probes (Loki's /ready) answer by it too.
func (s *Server) NotReady() error {
	if !s.ready.Load() {
		return errors.New("storage is opening (WAL replay)")
	}
	if s.stopping.Load() {
		return errors.New("shutting down")
	}
	if check := s.readyCheck.Load(); check != nil {
		return (*check)()
	}
	return nil
}

// Ready reports whether SetReady was called.
func (s *Server) Ready() bool { return s.ready.Load() }

// ServeHTTP adds the headers every response carries.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	s.mux.ServeHTTP(w, r)
}

func (s *Server) fallback(w http.ResponseWriter, r *http.Request) {
	root := s.root.Load()
	switch {
	case root != nil && !apiPath(r.URL.Path) && root.claims(r):
		root.h.ServeHTTP(w, r)
	case s.ui != nil && (r.Method == http.MethodGet || r.Method == http.MethodHead) && !apiPath(r.URL.Path):
		s.ui.ServeHTTP(w, r)
	case !s.ready.Load():
		w.Header().Set("Retry-After", "5")
		writeJSONError(w, http.StatusServiceUnavailable, "unavailable", "vigil is starting: storage is not ready yet, retry shortly")
	default:
		writeJSONError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.URL.Path+hint(r.URL.Path))
	}
}

// apiPrefixes are the path prefixes of APIs: vigil's own, and those that
// clients of other systems send to vigil by mistake (Loki, Tempo, Zipkin,
// Jaeger's collector, Mimir's /prometheus, VictoriaMetrics' /select and
// /insert, federation, InfluxDB-style /write). A client there wants a
// machine-readable 404, not the UI's HTML with 200, which it would try to
// parse. The UI's own routes (web/src/App.tsx) stay out of these.
var apiPrefixes = []string{
	"/api", "/-", "/metrics", "/v1", "/debug",
	"/loki", "/otlp", "/tempo", "/zipkin", "/jaeger", "/prometheus", "/select", "/insert", "/federate", "/write", "/push",
}

// pathHints tell a client of another API where vigil serves the same thing.
var pathHints = []struct{ prefix, hint string }{
	{"/v1/", "; OTLP/HTTP is received on vigil's OTLP/HTTP address (otlp_http_addr, port 4318 by default)"},
	{"/otlp/", "; OTLP/HTTP is received on vigil's OTLP/HTTP address (otlp_http_addr, port 4318 by default) at /v1/traces, /v1/logs and /v1/metrics"},
	{"/loki/", "; of Loki's API vigil serves the push (POST /loki/api/v1/push), buildinfo and the query routes listed in docs/api.md"},
	{"/tempo/", "; vigil serves traces through the Jaeger query API: GET /api/traces/{traceID}"},
	{"/prometheus/", "; the Prometheus API is at /api/v1/, without a prefix"},
}

func hint(p string) string {
	for _, h := range pathHints {
		if strings.HasPrefix(p, h.prefix) {
			return h.hint
		}
	}
	return ""
}

// apiPath reports whether p belongs to an API rather than to the UI: an
// unknown path there is a JSON error (503 during start-up, then 404), never
// the UI's index.html.
func apiPath(p string) bool {
	for _, prefix := range apiPrefixes {
		if p == prefix || strings.HasPrefix(p, prefix+"/") {
			return true
		}
	}
	return false
}

// writeJSONError answers in the Prometheus API's error shape. The APIs do
// not share one (the Jaeger and log APIs answer their own errors in their
// own shapes, internal/query/httpapi), but an answer given before any API
// is reached (not ready, no such path) cannot know which API the client
// speaks, and most clients of vigil's API paths (Grafana, promtool, the UI)
// read Prometheus's.
func writeJSONError(w http.ResponseWriter, code int, errType, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"status": "error", "errorType": errType, "error": msg})
}
