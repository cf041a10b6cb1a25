// Package web serves vigil's HTTP address: health and readiness, vigil's own
// metrics, and the APIs mounted by cmd/vigil once storage is open.
package web

import (
	_ "embed"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

//go:embed index.html
var indexHTML []byte

// contentSecurityPolicy allows only vigil's own static content.
const contentSecurityPolicy = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"

// Options configures the server.
type Options struct {
	Logger *slog.Logger
	// Gatherer serves /metrics; nil means no /metrics endpoint.
	Gatherer prometheus.Gatherer
}

// Server is the HTTP handler for the UI/API address. Routes may be mounted
// while it is serving; until SetReady, every path not yet mounted answers
// 503 so that clients arriving during WAL replay are told to retry.
type Server struct {
	mux    *http.ServeMux
	ready  atomic.Bool
	logger *slog.Logger
}

// New returns a server with /-/healthy, /-/ready, /metrics and / routed.
func New(opts Options) *Server {
	s := &Server{mux: http.NewServeMux(), logger: opts.Logger}
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
	case r.URL.Path == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", contentSecurityPolicy)
		_, _ = w.Write(indexHTML)
	case !s.ready.Load():
		w.Header().Set("Retry-After", "5")
		writeJSONError(w, http.StatusServiceUnavailable, "unavailable", "vigil is starting: storage is not ready yet, retry shortly")
	default:
		writeJSONError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.URL.Path)
	}
}

// writeJSONError answers in the Prometheus API's error shape, which is also
// what vigil's other JSON APIs use.
func writeJSONError(w http.ResponseWriter, code int, errType, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"status": "error", "errorType": errType, "error": msg})
}
