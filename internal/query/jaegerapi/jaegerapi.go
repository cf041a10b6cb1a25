// Package jaegerapi serves the subset of the Jaeger query service's HTTP API
// that the Jaeger UI and Grafana's Jaeger data source need to show a trace:
// GET /api/traces/{traceID}. Spans are read from storage as pdata and
// converted to Jaeger's JSON model following the conventions the
// OpenTelemetry Collector and Jaeger itself use for OTLP→Jaeger.
package jaegerapi

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/query/httpapi"
	"github.com/vigil-observability/vigil/internal/query/querylimit"
	"github.com/vigil-observability/vigil/internal/storage"
)

// TraceStore is the storage capability the handler needs; a
// storage.SpanLogStore satisfies it.
type TraceStore interface {
	// GetTrace returns every span of the trace, or an error wrapping
	// storage.ErrTraceNotFound when there is none.
	GetTrace(ctx context.Context, id pcommon.TraceID) (ptrace.Traces, error)
	storage.TraceSearcher
}

// DependencyReader reports the calls between services, for
// /api/dependencies.
type DependencyReader interface {
	// Dependencies returns the service-to-service call counts in the
	// window of length lookback ending at end.
	Dependencies(ctx context.Context, end time.Time, lookback time.Duration) ([]storage.Dependency, error)
}

// dependency is one edge of Jaeger's dependency graph.
type dependency struct {
	Parent    string `json:"parent"`
	Child     string `json:"child"`
	CallCount uint64 `json:"callCount"`
}

// Options configures the handler.
type Options struct {
	// Traces is where spans are read from. Required.
	Traces TraceStore
	// Dependencies answers /api/dependencies; nil answers an empty graph.
	Dependencies DependencyReader
	// Now returns the current time, for default search ranges; nil means
	// time.Now.
	Now func() time.Time
	// Logger receives storage failures; nil discards them.
	Logger *slog.Logger
	// Registerer receives vigil_query_requests_total{api="jaeger",code};
	// nil means the metric is not registered (tests).
	Registerer prometheus.Registerer
	// MaxTraceSpans and MaxTraceBytes bound what one trace read by id
	// returns (0: no bound): the earliest spans are kept and the trace's
	// warnings say that the rest were left out.
	MaxTraceSpans int
	MaxTraceBytes int64
	// Slots is the process's query concurrency limiter: each request runs
	// under one slot (nil: no bound).
	Slots *querylimit.Slots
}

// Routes lists the path patterns NewHandler serves, for mounting.
var Routes = []string{
	"/api/traces/{traceID}", "/api/traces", "/api/services", "/api/services/{service}/operations",
	"/api/operations", "/api/dependencies", "/api/trace-summaries",
}

// NewHandler returns the handler for Jaeger's query API (Routes) and
// vigil's /api/trace-summaries. It matches full request paths, so mount it
// without stripping a prefix. It panics if opts.Traces is nil, which is a
// wiring bug.
func NewHandler(opts Options) http.Handler {
	if opts.Traces == nil {
		panic("jaegerapi: Options.Traces is nil")
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := &handler{traces: opts.Traces, deps: opts.Dependencies, logger: logger, requests: httpapi.NewRequestCounter("jaeger", opts.Registerer), now: opts.Now,
		maxSpans: opts.MaxTraceSpans, maxBytes: opts.MaxTraceBytes}
	if h.now == nil {
		h.now = time.Now
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/traces/{traceID}", h.getTrace)
	mux.HandleFunc("GET /api/traces", h.findTraces)
	mux.HandleFunc("GET /api/trace-summaries", h.traceSummaries)
	mux.HandleFunc("GET /api/services", h.services)
	mux.HandleFunc("GET /api/services/{service}/operations", h.serviceOperations)
	mux.HandleFunc("GET /api/operations", h.operations)
	mux.HandleFunc("GET /api/dependencies", h.dependencies)
	httpapi.MethodNotAllowed(mux, Routes, h.writeError)
	if opts.Slots == nil {
		return mux
	}
	return opts.Slots.Handler(mux, h.writeError)
}

type handler struct {
	traces   TraceStore
	deps     DependencyReader
	now      func() time.Time
	logger   *slog.Logger
	requests *prometheus.CounterVec
	maxSpans int
	maxBytes int64
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
	trace, _, err := h.readTrace(r.Context(), id, h.maxSpans, h.maxBytes)
	if errors.Is(err, storage.ErrTraceNotFound) || (err == nil && len(trace.Spans) == 0) {
		// A backend that returns an empty result instead of
		// ErrTraceNotFound still means "not found" to the UI.
		h.writeError(w, http.StatusNotFound, "trace not found")
		return
	}
	if err != nil {
		h.storageError(w, r, err, "reading the trace", "trace_id", hex.EncodeToString(id[:]))
		return
	}
	h.writeJSON(w, http.StatusOK, response{Data: []jsonTrace{trace}})
}

// readTrace reads and converts one trace, keeping at most maxSpans spans
// and about maxBytes of encoded span data (0: no bound). It returns the
// encoded size read, for callers sharing one budget over several traces.
// A truncated trace says so in its warnings, Jaeger's own marker for a
// partial trace, and on its first span, which the UI shows.
func (h *handler) readTrace(ctx context.Context, id pcommon.TraceID, maxSpans int, maxBytes int64) (jsonTrace, int64, error) {
	lim := &storage.TraceReadLimit{MaxSpans: maxSpans, MaxBytes: maxBytes}
	td, err := h.traces.GetTrace(storage.WithTraceReadLimit(ctx, lim), id)
	if err != nil {
		return jsonTrace{}, 0, err
	}
	trace := convertTrace(id, td)
	if maxSpans > 0 && len(trace.Spans) > maxSpans {
		// A backend that does not honour the limit: trim what it read.
		trace.Spans = trace.Spans[:maxSpans]
		lim.Truncated = true
	}
	if lim.Truncated && len(trace.Spans) > 0 {
		msg := fmt.Sprintf("trace truncated: showing its first %d spans by start time; the rest exceed the query limits (query.max_trace_spans %d, query.max_response_bytes %d)",
			len(trace.Spans), h.maxSpans, h.maxBytes)
		trace.Warnings = append(trace.Warnings, msg)
		trace.Spans[0].Warnings = append(trace.Spans[0].Warnings, msg)
	}
	return trace, lim.ReadBytes, nil
}

// storageError answers a failed storage call as every query API does
// (httpapi.ReadFailure); what the store did not foresee is a 500.
func (h *handler) storageError(w http.ResponseWriter, r *http.Request, err error, doing string, logArgs ...any) {
	f := httpapi.ReadFailure(r.Context(), err, httpapi.Failure{
		Code: http.StatusInternalServerError, Msg: "internal error " + doing, Level: slog.LevelError,
	})
	h.logger.Log(r.Context(), f.Level, "jaegerapi: "+doing+" failed", append(logArgs, "err", err)...)
	f.Write(w, h.writeError)
}

func (h *handler) writeError(w http.ResponseWriter, code int, msg string) {
	h.writeJSON(w, code, response{Errors: []responseError{{Code: code, Msg: msg}}})
}

// encodingFailed is the answer to a value that does not encode.
var encodingFailed = []byte(`{"data":null,"total":0,"limit":0,"offset":0,"errors":[{"code":500,"msg":"internal error encoding the response"}]}` + "\n")

func (h *handler) writeJSON(w http.ResponseWriter, code int, v any) {
	code, err := httpapi.WriteJSON(w, code, v, encodingFailed)
	if err != nil {
		// Conversion produces only encodable values, so this is a bug.
		h.logger.Error("jaegerapi: encoding response failed", "err", err)
	}
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
