// Package web serves vigil's HTTP address: health and readiness, vigil's own
// metrics, the APIs mounted by cmd/vigil once storage is open, and the web UI
// on every other path.
package web

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
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
	mux    *http.ServeMux
	ready  atomic.Bool
	logger *slog.Logger
	ui     http.Handler
}

// New returns a server with /-/healthy, /-/ready, /metrics and the UI routed.
func New(opts Options) *Server {
	s := &Server{mux: http.NewServeMux(), logger: opts.Logger, ui: opts.UI}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	s.mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("vigil is Healthy.\n"))
	})
	s.mux.HandleFunc("GET /-/ready", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !s.ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("vigil is not ready: storage is opening (WAL replay).\n"))
			return
		}
		_, _ = w.Write([]byte("vigil is Ready.\n"))
	})
	if opts.Gatherer != nil {
		s.mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{}))
	}
	s.mux.HandleFunc("/", s.fallback)
	return s
}

// Handle mounts h at pattern (http.ServeMux syntax). It is safe to call
// while serving.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// SetReady marks storage open and every API mounted.
func (s *Server) SetReady() { s.ready.Store(true) }

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
	switch {
	case s.ui != nil && (r.Method == http.MethodGet || r.Method == http.MethodHead) && !apiPath(r.URL.Path):
		s.ui.ServeHTTP(w, r)
	case !s.ready.Load():
		w.Header().Set("Retry-After", "5")
		writeJSONError(w, http.StatusServiceUnavailable, "unavailable", "vigil is starting: storage is not ready yet, retry shortly")
	default:
		writeJSONError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.URL.Path)
	}
}

// apiPath reports whether p belongs to an API rather than to the UI: an
// unknown path there is a JSON error (503 during start-up, then 404), never
// the UI's index.html. The UI's own routes stay out of these prefixes.
func apiPath(p string) bool {
	for _, prefix := range []string{"/api", "/-", "/metrics", "/v1", "/debug"} {
		if p == prefix || strings.HasPrefix(p, prefix+"/") {
			return true
		}
	}
	return false
}

// writeJSONError answers in the Prometheus API's error shape, which is also
// what vigil's other JSON APIs use.
func writeJSONError(w http.ResponseWriter, code int, errType, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"status": "error", "errorType": errType, "error": msg})
}
