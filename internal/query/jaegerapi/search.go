package jaegerapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/vigil-observability/vigil/internal/storage"
)

// Search defaults and bounds.
const (
	// DefaultLookback is the search window when start is absent.
	DefaultLookback = time.Hour
	// MaxLimit bounds how many traces one search returns; /api/traces
	// returns whole traces, so it bounds the work of one request.
	MaxLimit = 1500
)

// parseSearch reads the query parameters Jaeger's UI and Grafana's Jaeger
// data source send to /api/traces.
func (h *handler) parseSearch(v url.Values) (storage.TraceQuery, error) {
	q := storage.TraceQuery{
		Service:   v.Get("service"),
		Operation: v.Get("operation"),
		Limit:     storage.DefaultTraceLimit,
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return q, fmt.Errorf("limit %q is not a non-negative integer", truncate(s, 40))
		}
		if n > 0 {
			q.Limit = min(n, MaxLimit)
		}
	}
	end := h.now()
	if s := v.Get("end"); s != "" {
		t, err := parseMicros(s)
		if err != nil {
			return q, fmt.Errorf("end: %w", err)
		}
		end = t
	}
	lookback := DefaultLookback
	if s := v.Get("lookback"); s != "" && s != "custom" {
		d, err := parseDuration(s)
		if err != nil {
			return q, fmt.Errorf("lookback: %w", err)
		}
		lookback = d
	}
	start := end.Add(-lookback)
	if s := v.Get("start"); s != "" {
		t, err := parseMicros(s)
		if err != nil {
			return q, fmt.Errorf("start: %w", err)
		}
		start = t
	}
	if !start.Before(end) {
		return q, fmt.Errorf("start %s is not before end %s", start.Format(time.RFC3339Nano), end.Format(time.RFC3339Nano))
	}
	q.Start, q.End = start, end
	for _, p := range []struct {
		name string
		dst  *time.Duration
	}{{"minDuration", &q.MinDuration}, {"maxDuration", &q.MaxDuration}} {
		if s := v.Get(p.name); s != "" {
			d, err := parseDuration(s)
			if err != nil {
				return q, fmt.Errorf("%s: %w", p.name, err)
			}
			*p.dst = d
		}
	}
	if q.MinDuration > 0 && q.MaxDuration > 0 && q.MaxDuration < q.MinDuration {
		return q, fmt.Errorf("maxDuration %s is below minDuration %s", q.MaxDuration, q.MinDuration)
	}
	tags, err := parseTags(v)
	if err != nil {
		return q, err
	}
	q.Tags = tags
	return q, nil
}

// parseTags reads tags={"k":"v",...} (Jaeger UI, Grafana) and tag=k:v
// (repeatable, Jaeger's older form).
func parseTags(v url.Values) (map[string]string, error) {
	tags := map[string]string{}
	for _, raw := range v["tags"] {
		if raw == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(raw), &m); err != nil {
			return nil, fmt.Errorf(`tags must be a JSON object such as {"http.status_code":"500"}: %v`, err)
		}
		for k, val := range m {
			switch x := val.(type) {
			case string:
				tags[k] = x
			case float64:
				tags[k] = strconv.FormatFloat(x, 'f', -1, 64)
			case bool:
				tags[k] = strconv.FormatBool(x)
			default:
				return nil, fmt.Errorf("tag %q: value must be a string, number or boolean", k)
			}
		}
	}
	for _, kv := range v["tag"] {
		k, val, ok := strings.Cut(kv, ":")
		if !ok || k == "" {
			return nil, fmt.Errorf("tag %q: want key:value", truncate(kv, 60))
		}
		tags[k] = val
	}
	if len(tags) == 0 {
		return nil, nil
	}
	if len(tags) > storage.MaxTraceTags {
		return nil, fmt.Errorf("%d tags: at most %d can be searched at once", len(tags), storage.MaxTraceTags)
	}
	return tags, nil
}

// parseMicros reads a Jaeger timestamp: microseconds since the Unix epoch.
func parseMicros(s string) (time.Time, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/1000 {
		return time.Time{}, fmt.Errorf("%q is not a time in microseconds since the Unix epoch", truncate(s, 40))
	}
	return time.UnixMicro(n), nil
}

// parseDuration reads a Go duration ("1.2s", "100ms", "1h"), as Jaeger does.
func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration such as 100ms or 1.5s", truncate(s, 40))
	}
	return d, nil
}

// findTraces answers /api/traces with whole traces, as Jaeger does: either
// those named by traceID parameters or those a search finds.
func (h *handler) findTraces(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	var ids []pcommon.TraceID
	if raw := v["traceID"]; len(raw) > 0 {
		for _, s := range raw {
			id, err := ParseTraceID(s)
			if err != nil {
				h.writeError(w, http.StatusBadRequest, err.Error())
				return
			}
			ids = append(ids, id)
		}
	} else {
		q, err := h.parseSearch(v)
		if err != nil {
			h.writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		if ids, err = h.findTraceIDs(r.Context(), q); err != nil {
			h.storageError(w, r, err, "searching traces")
			return
		}
	}
	// The traces of one answer share one budget of spans and bytes, as
	// one trace read by id has: a search of 1,500 traces of thousands of
	// spans each must not take more than one large trace would. Traces
	// past the budget are left out; the last one read may be truncated.
	traces := make([]jsonTrace, 0, len(ids))
	spansLeft, bytesLeft := h.maxSpans, h.maxBytes
	for _, id := range ids {
		t, read, err := h.readTrace(r.Context(), id, spansLeft, bytesLeft)
		if errors.Is(err, storage.ErrTraceNotFound) {
			continue // dropped by retention since the search, or never stored
		}
		if err != nil {
			h.storageError(w, r, err, "reading a trace", "trace_id", traceIDString(id))
			return
		}
		if len(t.Spans) == 0 {
			continue
		}
		traces = append(traces, t)
		if h.maxSpans > 0 {
			if spansLeft -= len(t.Spans); spansLeft <= 0 {
				break
			}
		}
		if h.maxBytes > 0 {
			if bytesLeft -= read; bytesLeft <= 0 {
				break
			}
		}
	}
	h.writeJSON(w, http.StatusOK, response{Data: traces, Total: len(traces)})
}

// findTraceIDs returns the ids of the traces a search finds, without their
// summaries when the store can leave them out: the traces are read whole
// next, and the summaries cost the store a second read of their spans.
func (h *handler) findTraceIDs(ctx context.Context, q storage.TraceQuery) ([]pcommon.TraceID, error) {
	if f, ok := h.traces.(storage.TraceIDFinder); ok {
		return f.FindTraceIDs(ctx, q)
	}
	sums, err := h.traces.FindTraces(ctx, q)
	if err != nil {
		return nil, err
	}
	ids := make([]pcommon.TraceID, len(sums))
	for i, s := range sums {
		ids[i] = s.TraceID
	}
	return ids, nil
}

// summary is one trace in /api/trace-summaries.
type summary struct {
	TraceID     string         `json:"traceID"`
	RootService string         `json:"rootService"`
	RootName    string         `json:"rootName"`
	Start       string         `json:"start"`
	DurationMs  float64        `json:"durationMs"`
	SpanCount   int            `json:"spanCount"`
	ErrorCount  int            `json:"errorCount"`
	Services    []summaryOfSvc `json:"services"`
}

type summaryOfSvc struct {
	Name   string `json:"name"`
	Spans  int    `json:"spans"`
	Errors int    `json:"errors"`
}

// traceSummaries answers vigil's /api/trace-summaries: the search of
// /api/traces, but one small summary per trace instead of all its spans,
// for result lists.
func (h *handler) traceSummaries(w http.ResponseWriter, r *http.Request) {
	q, err := h.parseSearch(r.URL.Query())
	if err != nil {
		h.writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	sums, err := h.traces.FindTraces(r.Context(), q)
	if err != nil {
		h.storageError(w, r, err, "searching traces")
		return
	}
	out := make([]summary, 0, len(sums))
	for _, s := range sums {
		js := summary{
			TraceID:     traceIDString(s.TraceID),
			RootService: s.RootService,
			RootName:    s.RootName,
			Start:       s.Start.UTC().Format(time.RFC3339Nano),
			DurationMs:  float64(s.Duration.Microseconds()) / 1000,
			SpanCount:   s.SpanCount,
			ErrorCount:  s.ErrorCount,
			Services:    make([]summaryOfSvc, 0, len(s.Services)),
		}
		for _, ss := range s.Services {
			js.Services = append(js.Services, summaryOfSvc{Name: ss.Name, Spans: ss.Spans, Errors: ss.Errors})
		}
		out = append(out, js)
	}
	h.writeJSON(w, http.StatusOK, response{Data: out, Total: len(out)})
}

func (h *handler) services(w http.ResponseWriter, r *http.Request) {
	svcs, err := h.traces.Services(r.Context())
	if err != nil {
		h.storageError(w, r, err, "listing services")
		return
	}
	if svcs == nil {
		svcs = []string{}
	}
	h.writeJSON(w, http.StatusOK, response{Data: svcs, Total: len(svcs)})
}

func (h *handler) serviceOperations(w http.ResponseWriter, r *http.Request) {
	ops, err := h.traces.Operations(r.Context(), r.PathValue("service"))
	if err != nil {
		h.storageError(w, r, err, "listing operations")
		return
	}
	names := make([]string, 0, len(ops))
	for _, op := range ops {
		if len(names) == 0 || names[len(names)-1] != op.Name {
			names = append(names, op.Name)
		}
	}
	h.writeJSON(w, http.StatusOK, response{Data: names, Total: len(names)})
}

// operation is one entry of /api/operations.
type operation struct {
	Name     string `json:"name"`
	SpanKind string `json:"spanKind"`
}

func (h *handler) operations(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	service := v.Get("service")
	if service == "" {
		h.writeError(w, http.StatusBadRequest, "parameter service is required")
		return
	}
	kind := strings.ToLower(v.Get("spanKind"))
	if kind != "" && !slices.Contains([]string{"server", "client", "producer", "consumer", "internal", "unspecified"}, kind) {
		h.writeError(w, http.StatusBadRequest, "spanKind must be one of server, client, producer, consumer, internal, unspecified")
		return
	}
	ops, err := h.traces.Operations(r.Context(), service)
	if err != nil {
		h.storageError(w, r, err, "listing operations")
		return
	}
	out := make([]operation, 0, len(ops))
	for _, op := range ops {
		k := spanKind(op.Kind)
		if kind != "" && k != kind && !(kind == "unspecified" && k == "") {
			continue
		}
		out = append(out, operation{Name: op.Name, SpanKind: k})
	}
	h.writeJSON(w, http.StatusOK, response{Data: out, Total: len(out)})
}

// dependencies answers /api/dependencies?endTs=<ms>&lookback=<ms>.
func (h *handler) dependencies(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	end := h.now()
	if s := v.Get("endTs"); s != "" {
		ms, err := strconv.ParseInt(s, 10, 64)
		if err != nil || ms < 0 {
			h.writeError(w, http.StatusBadRequest, "endTs must be milliseconds since the Unix epoch")
			return
		}
		end = time.UnixMilli(ms)
	}
	lookback := 24 * time.Hour
	if s := v.Get("lookback"); s != "" {
		ms, err := strconv.ParseInt(s, 10, 64)
		if err != nil || ms <= 0 {
			h.writeError(w, http.StatusBadRequest, "lookback must be a positive number of milliseconds")
			return
		}
		lookback = time.Duration(ms) * time.Millisecond
	}
	deps := []dependency{}
	if h.deps != nil {
		got, err := h.deps.Dependencies(r.Context(), end, lookback)
		if err != nil {
			h.storageError(w, r, err, "computing dependencies")
			return
		}
		for _, d := range got {
			deps = append(deps, dependency(d))
		}
	}
	h.writeJSON(w, http.StatusOK, response{Data: deps, Total: len(deps)})
}
