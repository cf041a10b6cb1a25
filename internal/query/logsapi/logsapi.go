// Package logsapi serves vigil's log search API, GET /api/logs: log records
// filtered by trace, service, body text and time range, newest first, as
// JSON. The time and limit rules are documented in docs/api.md.
package logsapi

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/vigil-observability/vigil/internal/query/apitime"
	"github.com/vigil-observability/vigil/internal/query/httpapi"
	"github.com/vigil-observability/vigil/internal/query/querylimit"
	"github.com/vigil-observability/vigil/internal/storage"
)

// Defaults and bounds of the query parameters.
const (
	// DefaultLimit is the number of records returned when limit is absent.
	DefaultLimit = 100
	// MaxLimit is the largest accepted limit; the whole answer is built in
	// memory, so it bounds what one request can cost.
	MaxLimit = 1000
	// DefaultRange is how far back the search reaches when start is absent.
	DefaultRange = time.Hour
)

// LogFinder is the storage capability the handler needs.
// storage.LogReader satisfies it.
type LogFinder interface {
	// FindLogs yields matching records newest first; an error ends the sequence.
	FindLogs(ctx context.Context, q storage.LogQuery) iter.Seq2[storage.LogRecord, error]
	// LogHistogram counts matching records per time bin and severity band.
	LogHistogram(ctx context.Context, q storage.LogQuery, step time.Duration) ([]storage.LogBucket, error)
}

// Options configures the handler.
type Options struct {
	// Logs is where records are read from. Required.
	Logs LogFinder
	// Logger receives storage failures; nil discards them.
	Logger *slog.Logger
	// Registerer receives vigil_query_requests_total{api="logs",code};
	// nil means the metric is not registered (tests).
	Registerer prometheus.Registerer
	// Now returns the current time, for the default range; nil means time.Now.
	Now func() time.Time
	// Slots is the process's query concurrency limiter: each search runs
	// under one slot (nil: no bound).
	Slots *querylimit.Slots
}

// Routes lists the path patterns NewHandler serves, for mounting.
var Routes = []string{"/api/logs", "/api/logs/histogram"}

// NewHandler returns the handler for GET /api/logs and
// /api/logs/histogram. It matches full request paths, so mount it without
// stripping a prefix. It
// panics if opts.Logs is nil, which is a wiring bug.
func NewHandler(opts Options) http.Handler {
	if opts.Logs == nil {
		panic("logsapi: Options.Logs is nil")
	}
	h := &handler{logs: opts.Logs, logger: opts.Logger, now: opts.Now}
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	h.requests = httpapi.NewRequestCounter("logs", opts.Registerer)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/logs", h.findLogs)
	mux.HandleFunc("GET /api/logs/histogram", h.histogram)
	httpapi.MethodNotAllowed(mux, Routes, h.writeError)
	if opts.Slots == nil {
		return mux
	}
	return opts.Slots.Handler(mux, h.writeError)
}

type handler struct {
	logs     LogFinder
	logger   *slog.Logger
	now      func() time.Time
	requests *prometheus.CounterVec
}

// record is one log record in the response.
type record struct {
	Timestamp      string         `json:"timestamp"`
	Severity       string         `json:"severity"`
	SeverityNumber int            `json:"severity_number"`
	Body           string         `json:"body"`
	Service        string         `json:"service"`
	TraceID        string         `json:"trace_id"`
	SpanID         string         `json:"span_id"`
	Attributes     map[string]any `json:"attributes"`
	Resource       map[string]any `json:"resource"`
	Scope          string         `json:"scope"`
}

type response struct {
	Data []record `json:"data"`
	// NextCursor continues the search after the last record; empty when
	// this page was not full.
	NextCursor string `json:"next_cursor,omitempty"`
}

type errorResponse struct {
	Error string `json:"error"`
}

func (h *handler) findLogs(w http.ResponseWriter, r *http.Request) {
	q, err := parseQuery(r.URL.Query(), h.now(), false)
	if err != nil {
		h.writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	// Collect everything before answering so that a storage error found
	// mid-way becomes a clean error status, not a truncated 200.
	out := response{Data: make([]record, 0, min(q.Limit, 128))}
	for rec, err := range h.logs.FindLogs(r.Context(), q) {
		if err != nil {
			h.storageError(w, r.Context(), err)
			return
		}
		out.Data = append(out.Data, convert(rec))
		if len(out.Data) >= q.Limit {
			out.NextCursor = rec.Cursor
			break // a backend ignoring Limit must not make the answer unbounded
		}
	}
	h.writeJSON(w, http.StatusOK, out)
}

// storageError answers a failed read as every query API does
// (httpapi.ReadFailure); what the store did not foresee is a 500.
func (h *handler) storageError(w http.ResponseWriter, ctx context.Context, err error) {
	f := httpapi.ReadFailure(ctx, err, httpapi.Failure{
		Code: http.StatusInternalServerError, Msg: "internal error reading logs", Level: slog.LevelError,
	})
	h.logger.Log(ctx, f.Level, "logsapi: reading logs failed", "err", err)
	f.Write(w, h.writeError)
}

// writeError answers in the log API's error shape, {"error": msg}.
func (h *handler) writeError(w http.ResponseWriter, code int, msg string) {
	h.writeJSON(w, code, errorResponse{Error: msg})
}

// encodingFailed is the answer to a value that does not encode.
var encodingFailed = []byte(`{"error":"internal error encoding the response"}` + "\n")

func (h *handler) writeJSON(w http.ResponseWriter, code int, v any) {
	code, err := httpapi.WriteJSON(w, code, v, encodingFailed)
	if err != nil {
		// convert only produces encodable values, so this is a bug.
		h.logger.Error("logsapi: encoding response failed", "err", err)
	}
	h.requests.WithLabelValues(strconv.Itoa(code)).Inc()
}

// parseQuery validates the URL parameters and turns them into a LogQuery.
// The histogram takes the same filters but no limit or cursor, and always
// a closed range.
func parseQuery(v url.Values, now time.Time, histogram bool) (storage.LogQuery, error) {
	for name, vals := range v {
		if len(vals) > 1 && name != "severity" {
			return storage.LogQuery{}, fmt.Errorf("parameter %q given %d times; give it at most once", name, len(vals))
		}
		if histogram && (name == "limit" || name == "cursor") {
			return storage.LogQuery{}, fmt.Errorf("parameter %q does not apply to the histogram", name)
		}
	}
	q := storage.LogQuery{
		Service: v.Get("service"),
		Limit:   DefaultLimit,
		After:   v.Get("cursor"),
	}
	terms, err := parseTerms(v.Get("q"))
	if err != nil {
		return q, err
	}
	q.Terms = terms
	for _, list := range v["severity"] {
		for _, name := range strings.Split(list, ",") {
			if name = strings.TrimSpace(name); name == "" {
				continue
			}
			sev, ok := storage.ParseSeverity(name)
			if !ok {
				return q, fmt.Errorf("invalid severity %q: use trace, debug, info, warn, error, fatal or unset", name)
			}
			q.Severities = append(q.Severities, sev)
		}
	}
	for name := range v {
		key, ok := strings.CutPrefix(name, "attr.")
		if !ok {
			continue
		}
		if key == "" {
			return q, errors.New("invalid attribute filter: attr. needs a key, as in attr.http.route=/cart")
		}
		if q.Attributes == nil {
			q.Attributes = map[string]string{}
		}
		q.Attributes[key] = v.Get(name)
	}
	if len(q.Attributes) > maxAttrFilters {
		return q, fmt.Errorf("invalid attribute filters: %d attr. parameters; at most %d", len(q.Attributes), maxAttrFilters)
	}
	if s := v.Get("trace_id"); s != "" {
		id, err := parseTraceID(s)
		if err != nil {
			return q, fmt.Errorf("invalid trace_id: %w", err)
		}
		q.TraceID = id
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		switch {
		case err != nil:
			return q, fmt.Errorf("invalid limit %q: not an integer", s)
		case n < 1:
			return q, fmt.Errorf("invalid limit %d: must be at least 1", n)
		case n > MaxLimit:
			return q, fmt.Errorf("invalid limit %d: at most %d records can be requested at once; narrow the time range instead", n, MaxLimit)
		}
		q.Limit = n
	}
	if s := v.Get("end"); s != "" {
		if q.End, err = apitime.Parse(s); err != nil {
			return q, fmt.Errorf("invalid end: %w", err)
		}
	} else if histogram {
		q.End = now
	}
	if s := v.Get("start"); s != "" {
		if q.Start, err = apitime.Parse(s); err != nil {
			return q, fmt.Errorf("invalid start: %w", err)
		}
	} else {
		// Without end the search stays open-ended so that records stamped
		// slightly in the future by a skewed clock are still found.
		q.Start = cmpOr(q.End, now).Add(-DefaultRange)
	}
	if !q.End.IsZero() && !q.Start.Before(q.End) {
		return q, fmt.Errorf("start (%s) must be before end (%s)",
			q.Start.UTC().Format(time.RFC3339Nano), q.End.UTC().Format(time.RFC3339Nano))
	}
	return q, nil
}

// parseTerms splits a query into terms at spaces; a "quoted phrase" is
// one term.
func parseTerms(s string) ([]string, error) {
	var terms []string
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		if s[0] == '"' {
			end := strings.IndexByte(s[1:], '"')
			if end < 0 {
				return nil, errors.New(`invalid q: a quoted phrase is not closed; add the closing "`)
			}
			if phrase := s[1 : 1+end]; phrase != "" {
				terms = append(terms, phrase)
			}
			s = s[2+end:]
			continue
		}
		end := strings.IndexAny(s, " \t")
		if end < 0 {
			end = len(s)
		}
		terms = append(terms, s[:end])
		s = s[end:]
	}
	if len(terms) > maxTerms {
		return nil, fmt.Errorf("invalid q: %d terms; at most %d", len(terms), maxTerms)
	}
	return terms, nil
}

// maxAttrFilters bounds the attr. filters of one query, so that its SQL
// stays well inside the backends' query size limits (as
// storage.MaxTraceTags does for trace search).
const maxAttrFilters = 64

// maxTerms bounds the work one query's terms cost.
const maxTerms = 16

func cmpOr(t, fallback time.Time) time.Time {
	if t.IsZero() {
		return fallback
	}
	return t
}

// parseTraceID accepts 1 to 32 hex digits, left-padded with zeros, as the
// Jaeger API does, so the same id can be pasted into either.
func parseTraceID(s string) (pcommon.TraceID, error) {
	var id pcommon.TraceID
	if len(s) > 2*len(id) {
		return id, errors.New("longer than 32 hex digits")
	}
	padded := strings.Repeat("0", 2*len(id)-len(s)) + s
	if _, err := hex.Decode(id[:], []byte(padded)); err != nil {
		return pcommon.TraceID{}, fmt.Errorf("%q is not hexadecimal", s)
	}
	if id.IsEmpty() {
		return id, errors.New("must not be all zeros")
	}
	return id, nil
}

func convert(r storage.LogRecord) record {
	ts := r.Timestamp
	if ts.IsZero() {
		// OTLP says a record without a time is placed at its observed time.
		ts = r.ObservedTimestamp
	}
	out := record{
		Severity:       severity(r.SeverityText, r.SeverityNumber),
		SeverityNumber: int(r.SeverityNumber),
		Body:           r.Body,
		Service:        r.Service,
		Attributes:     make(map[string]any, len(r.Attributes)),
		Resource:       make(map[string]any, len(r.ResourceAttributes)),
		Scope:          r.ScopeName,
	}
	for k, v := range r.ResourceAttributes {
		out.Resource[k] = jsonSafe(v)
	}
	if !ts.IsZero() {
		out.Timestamp = ts.UTC().Format(time.RFC3339Nano)
	}
	if !r.TraceID.IsEmpty() {
		out.TraceID = hex.EncodeToString(r.TraceID[:])
	}
	if !r.SpanID.IsEmpty() {
		out.SpanID = hex.EncodeToString(r.SpanID[:])
	}
	for k, v := range r.Attributes {
		out.Attributes[k] = jsonSafe(v)
	}
	return out
}

// jsonSafe replaces float values JSON cannot represent (NaN, ±Inf) with
// their text, at any depth, so one odd attribute cannot fail the response.
func jsonSafe(v any) any {
	switch v := v.(type) {
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return strconv.FormatFloat(v, 'g', -1, 64)
		}
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = jsonSafe(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = jsonSafe(e)
		}
		return out
	}
	return v
}

// severity is the record's SeverityText, or else the OpenTelemetry short
// name of its SeverityNumber (TRACE, DEBUG2, INFO, WARN, ERROR, FATAL4...),
// or "" when neither is set.
func severity(text string, n plog.SeverityNumber) string {
	if text != "" {
		return text
	}
	if n < plog.SeverityNumberTrace || n > plog.SeverityNumberFatal4 {
		return ""
	}
	names := [...]string{"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"}
	i := int(n - plog.SeverityNumberTrace)
	name := names[i/4]
	if step := i % 4; step > 0 {
		name += strconv.Itoa(step + 1)
	}
	return name
}
