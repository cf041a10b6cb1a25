// Package httpapi is what vigil's JSON query APIs (the Jaeger API, the log
// API, RED and the service map) share: how a failed read is answered, how
// an answer is written, and how an API's routes are mounted.
//
// The APIs do not share an error shape: each keeps the one its clients
// parse (Jaeger's envelope, the log API's {"error": ...}, the Prometheus
// API's for RED), so every helper here takes the API's own error writer.
// What they share is which status a failure gets.
package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-observability/vigil/internal/storage"
)

// ErrorWriter answers code with msg in an API's own error shape.
type ErrorWriter func(w http.ResponseWriter, code int, msg string)

// Mux is what an API is mounted on; *http.ServeMux and vigil's web server
// satisfy it.
type Mux interface {
	Handle(pattern string, h http.Handler)
}

// Mount mounts h at each of routes: an API's handler matches full request
// paths, so it is mounted once per route, without a prefix stripped.
func Mount(mux Mux, routes []string, h http.Handler) {
	for _, r := range routes {
		mux.Handle(r, h)
	}
}

// MethodNotAllowed answers every method but GET (and HEAD) on routes with
// 405 and Allow, in the API's error shape; mux would otherwise answer them
// in plain text. Register the GET patterns on mux as well: they are more
// specific, so they win.
func MethodNotAllowed(mux *http.ServeMux, routes []string, writeError ErrorWriter) {
	for _, route := range routes {
		mux.HandleFunc(route, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, "method not allowed; use GET")
		})
	}
}

// Failure is how an API answers a read that failed.
type Failure struct {
	Code int
	Msg  string
	// RetryAfter is the Retry-After header sent with the answer; empty
	// sends none.
	RetryAfter string
	// Level is how loudly the failure is worth logging: a client that
	// left is no fault of the server's, a store that cannot answer is.
	Level slog.Level
}

// ReadFailure is the answer to err, returned by a read made for a request
// whose context is ctx:
//   - a query the store refuses (storage.ErrInvalidQuery): 400 with the
//     store's reason;
//   - the client went away: 503, logged at debug level;
//   - the store is unavailable or closed: 503 with Retry-After, a warning;
//   - anything else: unexpected, which says what the API answers it with
//     (the Jaeger and log APIs a 500, RED a retryable 503).
func ReadFailure(ctx context.Context, err error, unexpected Failure) Failure {
	switch {
	case errors.Is(err, storage.ErrInvalidQuery):
		return Failure{Code: http.StatusBadRequest, Msg: err.Error(), Level: slog.LevelDebug}
	case ctx.Err() != nil:
		return Failure{Code: http.StatusServiceUnavailable, Msg: "request cancelled", Level: slog.LevelDebug}
	case errors.Is(err, storage.ErrUnavailable), errors.Is(err, storage.ErrClosed):
		return Failure{Code: http.StatusServiceUnavailable, Msg: "storage unavailable, retry later", RetryAfter: "1", Level: slog.LevelWarn}
	}
	return unexpected
}

// Write answers f through writeError, the API's error shape.
func (f Failure) Write(w http.ResponseWriter, writeError ErrorWriter) {
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	writeError(w, f.Code, f.Msg)
}

// WriteJSON answers v as JSON with code. The whole answer is encoded
// before anything is written, so that a value that cannot be encoded
// becomes a clean 500 with fallback as its body (an error in the API's
// shape) rather than half a document after a 200. It returns the status
// it wrote and the encoding error, which is a bug in the caller.
func WriteJSON(w http.ResponseWriter, code int, v any, fallback []byte) (int, error) {
	var buf bytes.Buffer
	err := json.NewEncoder(&buf).Encode(v)
	body := buf.Bytes()
	if err != nil {
		code, body = http.StatusInternalServerError, fallback
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(body)
	return code, err
}

// PrometheusError answers code with msg in the Prometheus API's error
// shape ({"status":"error","errorType":...,"error":...}), which RED and
// the service map use: their clients are the UI and Grafana, which read
// it already. A 400 is "bad_data", anything else "unavailable".
func PrometheusError(w http.ResponseWriter, code int, msg string) {
	typ := "unavailable"
	if code == http.StatusBadRequest {
		typ = "bad_data"
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"status": "error", "errorType": typ, "error": msg})
}

// NewRequestCounter returns vigil_query_requests_total{api,code} for one
// API, registered with reg unless reg is nil (tests).
func NewRequestCounter(api string, reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        "vigil_query_requests_total",
		Help:        "HTTP requests answered by vigil's query APIs, by API and status code.",
		ConstLabels: prometheus.Labels{"api": api},
	}, []string{"code"})
	if reg != nil {
		reg.MustRegister(c)
	}
	return c
}
