// Package logsapi serves vigil's log search API, GET /api/logs: log records
// filtered by trace, service, body text and time range, newest first, as
// JSON. The time and limit rules are documented in docs/api.md.
package logsapi

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"math"
	"math/big"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

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
	// millisThreshold separates unix seconds from unix milliseconds: no
	// useful seconds value exceeds it (it is the year 33658), and every
	// millisecond value after 2001-09-09 does.
	millisThreshold = 1e12
)

// LogFinder is the storage capability the handler needs.
// storage.LogReader satisfies it.
type LogFinder interface {
	// FindLogs yields matching records newest first; an error ends the sequence.
	FindLogs(ctx context.Context, q storage.LogQuery) iter.Seq2[storage.LogRecord, error]
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
}

// NewHandler returns the handler for GET /api/logs. It matches the full
// request path, so mount it at "/api/logs" without stripping a prefix. It
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
	h.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        "vigil_query_requests_total",
		Help:        "HTTP requests answered by vigil's query APIs, by API and status code.",
		ConstLabels: prometheus.Labels{"api": "logs"},
	}, []string{"code"})
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(h.requests)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/logs", h.findLogs)
	// Without this the mux would answer other methods in plain text.
	mux.HandleFunc("/api/logs", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Allow", "GET, HEAD")
		h.writeJSON(w, http.StatusMethodNotAllowed, errorResponse{Error: "method not allowed; use GET"})
	})
	return mux
}

type handler struct {
	logs     LogFinder
	logger   *slog.Logger
	now      func() time.Time
	requests *prometheus.CounterVec
}

// record is one log record in the response.
type record struct {
	Timestamp  string         `json:"timestamp"`
	Severity   string         `json:"severity"`
	Body       string         `json:"body"`
	Service    string         `json:"service"`
	TraceID    string         `json:"trace_id"`
	SpanID     string         `json:"span_id"`
	Attributes map[string]any `json:"attributes"`
}

type response struct {
	Data []record `json:"data"`
}

type errorResponse struct {
	Error string `json:"error"`
}

func (h *handler) findLogs(w http.ResponseWriter, r *http.Request) {
	q, err := parseQuery(r.URL.Query(), h.now())
	if err != nil {
		h.writeJSON(w, http.StatusBadRequest, errorResponse{Error: err.Error()})
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
			break // a backend ignoring Limit must not make the answer unbounded
		}
	}
	h.writeJSON(w, http.StatusOK, out)
}

func (h *handler) storageError(w http.ResponseWriter, ctx context.Context, err error) {
	switch {
	case ctx.Err() != nil:
		h.logger.Debug("logsapi: request cancelled", "err", err)
		h.writeJSON(w, http.StatusServiceUnavailable, errorResponse{Error: "request cancelled"})
	case errors.Is(err, storage.ErrUnavailable), errors.Is(err, storage.ErrClosed):
		h.logger.Warn("logsapi: storage unavailable", "err", err)
		w.Header().Set("Retry-After", "1")
		h.writeJSON(w, http.StatusServiceUnavailable, errorResponse{Error: "storage unavailable, retry later"})
	default:
		h.logger.Error("logsapi: reading logs failed", "err", err)
		h.writeJSON(w, http.StatusInternalServerError, errorResponse{Error: "internal error reading logs"})
	}
}

func (h *handler) writeJSON(w http.ResponseWriter, code int, v any) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		// convert only produces encodable values, so this is a bug.
		h.logger.Error("logsapi: encoding response failed", "err", err)
		code = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":"internal error encoding the response"}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
	h.requests.WithLabelValues(strconv.Itoa(code)).Inc()
}

// parseQuery validates the URL parameters and turns them into a LogQuery.
func parseQuery(v url.Values, now time.Time) (storage.LogQuery, error) {
	for name, vals := range v {
		if len(vals) > 1 {
			return storage.LogQuery{}, fmt.Errorf("parameter %q given %d times; give it at most once", name, len(vals))
		}
	}
	q := storage.LogQuery{
		Service: v.Get("service"),
		Text:    v.Get("q"),
		Limit:   DefaultLimit,
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
	var err error
	if s := v.Get("end"); s != "" {
		if q.End, err = parseTime(s); err != nil {
			return q, fmt.Errorf("invalid end: %w", err)
		}
	}
	if s := v.Get("start"); s != "" {
		if q.Start, err = parseTime(s); err != nil {
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

func cmpOr(t, fallback time.Time) time.Time {
	if t.IsZero() {
		return fallback
	}
	return t
}

// parseTime accepts RFC 3339 (with or without fractional seconds), unix
// seconds with an optional fraction, or unix milliseconds: a number above
// 1e12 is read as milliseconds. Numbers are converted exactly (no float
// rounding), so a millisecond value keeps its milliseconds.
func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	bad := fmt.Errorf("%q is neither an RFC 3339 time nor a unix timestamp in seconds or milliseconds", s)
	if !isDecimal(s) {
		return time.Time{}, bad
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return time.Time{}, bad
	}
	unit := big.NewRat(int64(time.Second), 1)
	if r.Cmp(big.NewRat(millisThreshold, 1)) > 0 {
		unit = big.NewRat(int64(time.Millisecond), 1)
	}
	r.Mul(r, unit)
	nanos := new(big.Int).Quo(r.Num(), r.Denom())
	if !nanos.IsInt64() {
		// No stored record can lie outside what int64 nanoseconds hold
		// (years 1678 to 2262).
		return time.Time{}, fmt.Errorf("%q is out of range", s)
	}
	return time.Unix(0, nanos.Int64()).UTC(), nil
}

// isDecimal reports whether s is a plain decimal number, optionally signed,
// with an optional fraction and exponent. It keeps big.Rat's other accepted
// forms (fractions like 1/3, hex) out of the API.
func isDecimal(s string) bool {
	digits := func(s string) (rest string, n int) {
		for n < len(s) && s[n] >= '0' && s[n] <= '9' {
			n++
		}
		return s[n:], n
	}
	s = strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+")
	s, intDigits := digits(s)
	fracDigits := 0
	if strings.HasPrefix(s, ".") {
		s, fracDigits = digits(s[1:])
	}
	if intDigits+fracDigits == 0 {
		return false
	}
	if len(s) > 0 && (s[0] == 'e' || s[0] == 'E') {
		s = s[1:]
		if len(s) > 0 && (s[0] == '-' || s[0] == '+') {
			s = s[1:]
		}
		var expDigits int
		if s, expDigits = digits(s); expDigits == 0 || expDigits > 4 {
			return false
		}
	}
	return s == ""
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
		Severity:   severity(r.SeverityText, r.SeverityNumber),
		Body:       r.Body,
		Service:    r.Service,
		Attributes: make(map[string]any, len(r.Attributes)),
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
