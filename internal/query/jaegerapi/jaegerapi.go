// Package jaegerapi serves the subset of the Jaeger query service's HTTP API
// that the Jaeger UI and Grafana's Jaeger data source need to show a trace:
// GET /api/traces/{traceID}. Spans are read from storage as pdata and
// converted to Jaeger's JSON model following the conventions the
// OpenTelemetry Collector and Jaeger itself use for OTLP→Jaeger.
package jaegerapi

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage"
)

// TraceGetter is the storage capability the handler needs.
// storage.TraceReader satisfies it.
type TraceGetter interface {
	// GetTrace returns every span of the trace, or an error wrapping
	// storage.ErrTraceNotFound when there is none.
	GetTrace(ctx context.Context, id pcommon.TraceID) (ptrace.Traces, error)
}

// Options configures the handler.
type Options struct {
	// Traces is where spans are read from. Required.
	Traces TraceGetter
	// Logger receives storage failures; nil discards them.
	Logger *slog.Logger
	// Registerer receives vigil_query_requests_total{api="jaeger",code};
	// nil means the metric is not registered (tests).
	Registerer prometheus.Registerer
}

// NewHandler returns the handler for GET /api/traces/{traceID}. It matches
// full request paths, so mount it at "/api/traces/" without stripping the
// prefix. It panics if opts.Traces is nil, which is a wiring bug.
func NewHandler(opts Options) http.Handler {
	if opts.Traces == nil {
		panic("jaegerapi: Options.Traces is nil")
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        "vigil_query_requests_total",
		Help:        "HTTP requests answered by vigil's query APIs, by API and status code.",
		ConstLabels: prometheus.Labels{"api": "jaeger"},
	}, []string{"code"})
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(requests)
	}
	h := &handler{traces: opts.Traces, logger: logger, requests: requests}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/traces/{traceID}", h.getTrace)
	// Without this the mux would answer other methods in plain text.
	mux.HandleFunc("/api/traces/{traceID}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Allow", "GET, HEAD")
		h.writeError(w, http.StatusMethodNotAllowed, "method not allowed; use GET")
	})
	return mux
}

type handler struct {
	traces   TraceGetter
	logger   *slog.Logger
	requests *prometheus.CounterVec
}

// response is the envelope every Jaeger query API answer uses.
type response struct {
	Data   any             `json:"data"`
	Total  int             `json:"total"`
	Limit  int             `json:"limit"`
	Offset int             `json:"offset"`
	Errors []responseError `json:"errors"`
}

type responseError struct {
	Code int    `json:"code,omitempty"`
	Msg  string `json:"msg"`
}

func (h *handler) getTrace(w http.ResponseWriter, r *http.Request) {
	id, err := ParseTraceID(r.PathValue("traceID"))
	if err != nil {
		h.writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	td, err := h.traces.GetTrace(r.Context(), id)
	switch {
	case err == nil:
	case errors.Is(err, storage.ErrTraceNotFound):
		h.writeError(w, http.StatusNotFound, "trace not found")
		return
	case r.Context().Err() != nil:
		// The client went away; nobody reads the answer and it is not a
		// storage fault worth logging as one.
		h.logger.Debug("jaegerapi: request cancelled", "trace_id", hex.EncodeToString(id[:]), "err", err)
		h.writeError(w, http.StatusServiceUnavailable, "request cancelled")
		return
	case errors.Is(err, storage.ErrUnavailable), errors.Is(err, storage.ErrClosed):
		h.logger.Warn("jaegerapi: storage unavailable", "trace_id", hex.EncodeToString(id[:]), "err", err)
		w.Header().Set("Retry-After", "1")
		h.writeError(w, http.StatusServiceUnavailable, "storage unavailable, retry later")
		return
	default:
		h.logger.Error("jaegerapi: reading trace failed", "trace_id", hex.EncodeToString(id[:]), "err", err)
		h.writeError(w, http.StatusInternalServerError, "internal error reading the trace")
		return
	}
	trace := convertTrace(id, td)
	if len(trace.Spans) == 0 {
		// A backend that returns an empty result instead of
		// ErrTraceNotFound still means "not found" to the UI.
		h.writeError(w, http.StatusNotFound, "trace not found")
		return
	}
	h.writeJSON(w, http.StatusOK, response{Data: []jsonTrace{trace}})
}

func (h *handler) writeError(w http.ResponseWriter, code int, msg string) {
	h.writeJSON(w, code, response{Errors: []responseError{{Code: code, Msg: msg}}})
}

func (h *handler) writeJSON(w http.ResponseWriter, code int, v any) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		// Conversion produces only encodable values, so this is a bug; answer
		// with a well-formed error rather than half a document.
		h.logger.Error("jaegerapi: encoding response failed", "err", err)
		code = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"data":null,"total":0,"limit":0,"offset":0,"errors":[{"code":500,"msg":"internal error encoding the response"}]}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
	h.requests.WithLabelValues(strconv.Itoa(code)).Inc()
}

// ParseTraceID parses a trace id the way Jaeger does: 1 to 32 hex digits
// (either case), left-padded with zeros to 128 bits, so that 64-bit ids from
// older Jaeger clients can be written without their zero high half.
// The all-zero id is invalid in OpenTelemetry and rejected.
func ParseTraceID(s string) (pcommon.TraceID, error) {
	var id pcommon.TraceID
	if s == "" {
		return id, errors.New("trace id is empty")
	}
	if len(s) > 2*len(id) {
		return id, fmt.Errorf("trace id %q is longer than 32 hex digits", truncate(s, 40))
	}
	padded := strings.Repeat("0", 2*len(id)-len(s)) + s
	if _, err := hex.Decode(id[:], []byte(padded)); err != nil {
		return pcommon.TraceID{}, fmt.Errorf("trace id %q is not hexadecimal", s)
	}
	if id.IsEmpty() {
		return id, errors.New("trace id must not be all zeros")
	}
	return id, nil
}

// truncate keeps error messages bounded when a client sends a huge path.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
