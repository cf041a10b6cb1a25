// Package profileapi serves the stored profiles: a merged view of a
// service's profiles of one type over a time range (with label filters,
// or only the samples of one span) as a gzipped pprof that go tool pprof
// opens, as its top functions, or as a flame graph; and the services that
// have profiles. The JSON answers use the Prometheus API's envelope
// ({"status":"success","data":...}). docs/profiling.md documents them.
package profileapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-observability/vigil/internal/configcentre"
	"github.com/vigil-observability/vigil/internal/profiletype"
	"github.com/vigil-observability/vigil/internal/query/apitime"
	"github.com/vigil-observability/vigil/internal/query/httpapi"
	"github.com/vigil-observability/vigil/internal/query/querylimit"
	"github.com/vigil-observability/vigil/internal/storage"
)

// The paths served.
const (
	ExportPath     = "/api/v1/profiles/export"
	TopPath        = "/api/v1/profiles/top"
	FlameGraphPath = "/api/v1/profiles/flamegraph"
	DiffPath       = "/api/v1/profiles/diff"
	ServicesPath   = "/api/v1/profiles/services"
)

// Routes lists the path patterns NewHandler serves, for mounting.
var Routes = []string{ExportPath, TopPath, FlameGraphPath, DiffPath, ServicesPath}

// Defaults of Options and of the query parameters.
const (
	// DefaultRange is how far back a view reaches without start.
	DefaultRange = time.Hour
	// DefaultTopLimit and MaxTopLimit bound the top functions.
	DefaultTopLimit = 20
	MaxTopLimit     = 1000
	// DefaultMinFraction is the share of the whole below which a flame
	// graph folds a frame's callees into "(other)".
	DefaultMinFraction = 0.001
	// DefaultVersionWindow is how far back a diff between versions looks
	// for their deploys without start.
	DefaultVersionWindow = 7 * 24 * time.Hour
)

// Options configures the handler.
type Options struct {
	// Profiles is where profiles are read from. Required.
	Profiles storage.ProfileReader
	// Slots is the process's query concurrency limiter (nil: no bound).
	Slots      *querylimit.Slots
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
	// Deploys lists the deploys (change events of kind deploy, with a
	// service and the versions it went from and to) between two times,
	// for diffs between versions; nil: a diff takes no versions.
	Deploys func(ctx context.Context, start, end time.Time) ([]configcentre.Change, error)
}

type handler struct {
	opts     Options
	requests *prometheus.CounterVec
}

// NewHandler returns the handler of Routes; it panics without
// opts.Profiles.
func NewHandler(opts Options) http.Handler {
	if opts.Profiles == nil {
		panic("profileapi: Options.Profiles is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	h := &handler{opts: opts, requests: httpapi.NewRequestCounter("profiles", opts.Registerer)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+ExportPath, h.export)
	mux.HandleFunc("GET "+TopPath, h.top)
	mux.HandleFunc("GET "+FlameGraphPath, h.flameGraph)
	mux.HandleFunc("GET "+DiffPath, h.diff)
	mux.HandleFunc("GET "+ServicesPath, h.services)
	httpapi.MethodNotAllowed(mux, Routes, h.writeError)
	var out http.Handler = mux
	if opts.Slots != nil {
		out = opts.Slots.Handler(mux, h.writeError)
	}
	return h.count(out)
}

// count records each answer's status in vigil_query_requests_total.
func (h *handler) count(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r)
		h.requests.WithLabelValues(strconv.Itoa(sw.code)).Inc()
	})
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

func (h *handler) writeError(w http.ResponseWriter, code int, msg string) {
	httpapi.PrometheusError(w, code, msg)
}

var errorFallback = []byte(`{"status":"error","errorType":"internal","error":"encoding the answer failed"}` + "\n")

func (h *handler) writeData(w http.ResponseWriter, data any) {
	if _, err := httpapi.WriteJSON(w, http.StatusOK, map[string]any{"status": "success", "data": data}, errorFallback); err != nil {
		h.opts.Logger.Error("profile API answer not encoded", "err", err)
	}
}

// parseSelection reads service, type, start, end, span_id and label (each
// "name=value", repeatable).
func (h *handler) parseSelection(v url.Values) (Selection, error) {
	sel := Selection{Service: v.Get("service"), SpanID: v.Get("span_id")}
	if sel.Service == "" {
		return sel, errors.New("service is required")
	}
	typ := v.Get("type")
	if typ == "" {
		typ = "cpu"
	}
	t, err := profiletype.Lookup(typ)
	if err != nil {
		return sel, err
	}
	sel.Type = t
	sel.End = h.opts.Now()
	if s := v.Get("end"); s != "" {
		if sel.End, err = apitime.Parse(s); err != nil {
			return sel, fmt.Errorf("end: %w", err)
		}
	}
	sel.Start = sel.End.Add(-DefaultRange)
	if s := v.Get("start"); s != "" {
		if sel.Start, err = apitime.Parse(s); err != nil {
			return sel, fmt.Errorf("start: %w", err)
		}
	}
	if sel.End.Before(sel.Start) {
		return sel, errors.New("end is before start")
	}
	for _, l := range v["label"] {
		k, val, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return sel, fmt.Errorf("label %q is not name=value", l)
		}
		if sel.Labels == nil {
			sel.Labels = map[string]string{}
		}
		sel.Labels[k] = val
	}
	return sel, nil
}

// merge answers the request's errors itself; ok false when it did.
func (h *handler) merge(w http.ResponseWriter, r *http.Request) (Selection, Merged, bool) {
	sel, err := h.parseSelection(r.URL.Query())
	if err != nil {
		h.writeError(w, http.StatusBadRequest, err.Error())
		return sel, Merged{}, false
	}
	m, ok := h.mergeSelection(w, r, sel)
	return sel, m, ok
}

// mergeSelection merges sel, answering the request's errors itself; ok
// false when it did.
func (h *handler) mergeSelection(w http.ResponseWriter, r *http.Request, sel Selection) (Merged, bool) {
	m, err := Merge(r.Context(), h.opts.Profiles, sel)
	if err != nil {
		f := httpapi.ReadFailure(r.Context(), err, httpapi.Failure{
			Code: http.StatusInternalServerError, Msg: "reading profiles failed", Level: slog.LevelError,
		})
		h.opts.Logger.Log(context.WithoutCancel(r.Context()), f.Level, "profile query failed", "service", sel.Service, "type", sel.Type.Name, "err", err)
		f.Write(w, h.writeError)
		return Merged{}, false
	}
	return m, true
}

func (h *handler) export(w http.ResponseWriter, r *http.Request) {
	sel, m, ok := h.merge(w, r)
	if !ok {
		return
	}
	if m.Profile == nil {
		h.writeError(w, http.StatusNotFound, fmt.Sprintf("no %s profiles of service %q in the range", sel.Type.Name, sel.Service))
		return
	}
	var buf bytes.Buffer
	if err := m.Profile.Write(&buf); err != nil {
		h.writeError(w, http.StatusInternalServerError, "encoding the profile failed: "+err.Error())
		return
	}
	name := fmt.Sprintf("%s-%s-%s.pb.gz", sel.Service, sel.Type.Name, sel.End.UTC().Format("20060102T150405Z"))
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name))
	w.Header().Set("X-Vigil-Profiles", strconv.Itoa(m.Profiles))
	_, _ = w.Write(buf.Bytes())
}

// view is what the JSON answers share: what was merged.
type view struct {
	Service  string            `json:"service"`
	Type     string            `json:"type"`
	Unit     string            `json:"unit"`
	Start    time.Time         `json:"start"`
	End      time.Time         `json:"end"`
	Labels   map[string]string `json:"labels,omitempty"`
	SpanID   string            `json:"span_id,omitempty"`
	Profiles int               `json:"profiles"`
	Total    int64             `json:"total"`
}

func newView(sel Selection, m Merged) view {
	v := view{
		Service: sel.Service, Type: sel.Type.Name, Start: sel.Start.UTC(), End: sel.End.UTC(),
		Labels: sel.Labels, SpanID: sel.SpanID, Profiles: m.Profiles, Unit: sel.Type.Unit,
	}
	return v
}

func (h *handler) top(w http.ResponseWriter, r *http.Request) {
	limit, err := parseLimit(r.URL.Query())
	if err != nil {
		h.writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	sel, m, ok := h.merge(w, r)
	if !ok {
		return
	}
	out := struct {
		view
		Functions []Function `json:"functions"`
	}{view: newView(sel, m), Functions: []Function{}}
	if m.Profile != nil {
		fns, total := Top(m.Profile, limit)
		out.Functions, out.Total = fns, total
	}
	h.writeData(w, out)
}

// parseMinFraction reads min_fraction.
func parseMinFraction(v url.Values) (float64, error) {
	frac := DefaultMinFraction
	if s := v.Get("min_fraction"); s != "" {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f < 0 || f > 1 {
			return 0, errors.New("min_fraction must be a number between 0 and 1")
		}
		frac = f
	}
	return frac, nil
}

// parseLimit reads limit.
func parseLimit(v url.Values) (int, error) {
	limit := DefaultTopLimit
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 || n > MaxTopLimit {
			return 0, fmt.Errorf("limit must be between 1 and %d", MaxTopLimit)
		}
		limit = n
	}
	return limit, nil
}

func (h *handler) flameGraph(w http.ResponseWriter, r *http.Request) {
	frac, err := parseMinFraction(r.URL.Query())
	if err != nil {
		h.writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	sel, m, ok := h.merge(w, r)
	if !ok {
		return
	}
	out := struct {
		view
		FlameGraph *Node `json:"flamegraph"`
	}{view: newView(sel, m), FlameGraph: &Node{Name: "total"}}
	if m.Profile != nil {
		out.FlameGraph = FlameGraph(m.Profile, frac)
		out.Total = out.FlameGraph.Total
	}
	h.writeData(w, out)
}

func (h *handler) services(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	end, start := h.opts.Now(), time.Time{}
	var err error
	if s := v.Get("end"); s != "" {
		if end, err = apitime.Parse(s); err != nil {
			h.writeError(w, http.StatusBadRequest, "end: "+err.Error())
			return
		}
	}
	start = end.Add(-DefaultRange)
	if s := v.Get("start"); s != "" {
		if start, err = apitime.Parse(s); err != nil {
			h.writeError(w, http.StatusBadRequest, "start: "+err.Error())
			return
		}
	}
	svcs, err := h.opts.Profiles.ProfileServices(r.Context(), start, end)
	if err != nil {
		f := httpapi.ReadFailure(r.Context(), err, httpapi.Failure{Code: http.StatusInternalServerError, Msg: "listing profiled services failed", Level: slog.LevelError})
		h.opts.Logger.Log(context.WithoutCancel(r.Context()), f.Level, "profile services failed", "err", err)
		f.Write(w, h.writeError)
		return
	}
	if svcs == nil {
		svcs = []storage.ProfileService{}
	}
	h.writeData(w, svcs)
}

// parseBaseline reads the baseline range of a diff: baseline_start and
// baseline_end, each defaulting from the other (or, without both, from
// the comparison's start) so that the baseline is as long as the
// comparison; without either it is the equal range just before.
func parseBaseline(v url.Values, sel Selection) (Selection, error) {
	base := sel
	length := sel.End.Sub(sel.Start)
	var err error
	bs, be := v.Get("baseline_start"), v.Get("baseline_end")
	if be != "" {
		if base.End, err = apitime.Parse(be); err != nil {
			return base, fmt.Errorf("baseline_end: %w", err)
		}
	}
	if bs != "" {
		if base.Start, err = apitime.Parse(bs); err != nil {
			return base, fmt.Errorf("baseline_start: %w", err)
		}
	}
	switch {
	case bs == "" && be == "":
		base.End, base.Start = sel.Start, sel.Start.Add(-length)
	case bs == "":
		base.Start = base.End.Add(-length)
	case be == "":
		base.End = base.Start.Add(length)
	}
	if base.End.Before(base.Start) {
		return base, errors.New("baseline_end is before baseline_start")
	}
	return base, nil
}

// rangeView is what one side of a diff merged.
type rangeView struct {
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	Profiles int       `json:"profiles"`
	Total    int64     `json:"total"`
}

func (h *handler) diff(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	frac, err := parseMinFraction(v)
	if err != nil {
		h.writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	limit, err := parseLimit(v)
	if err != nil {
		h.writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	sel, err := h.parseSelection(v)
	if err != nil {
		h.writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	version, baseVersion := v.Get("version"), v.Get("baseline_version")
	var deploys []configcentre.Change
	var winStart, winEnd time.Time
	if version != "" || baseVersion != "" {
		if h.opts.Deploys == nil {
			h.writeError(w, http.StatusBadRequest, "version and baseline_version need change tracking, which this server lacks")
			return
		}
		if version != "" && v.Get("start") == "" {
			sel.Start = sel.End.Add(-DefaultVersionWindow)
		}
		// The comparison's range, or (with version) the window its
		// deploys are looked for in.
		winStart, winEnd = sel.Start, sel.End
		if version == "" {
			winStart = sel.End.Add(-DefaultVersionWindow)
		}
		if deploys, err = h.opts.Deploys(r.Context(), winStart, winEnd); err != nil {
			f := httpapi.ReadFailure(r.Context(), err, httpapi.Failure{
				Code: http.StatusInternalServerError, Msg: "reading the deploys failed", Level: slog.LevelError,
			})
			h.opts.Logger.Log(context.WithoutCancel(r.Context()), f.Level, "profile diff deploys failed", "service", sel.Service, "err", err)
			f.Write(w, h.writeError)
			return
		}
		if version != "" {
			if sel.Start, sel.End, err = VersionRange(deploys, sel.Service, version, winStart, winEnd); err != nil {
				h.writeError(w, http.StatusBadRequest, err.Error())
				return
			}
		}
	}
	baseSel, err := parseBaseline(v, sel)
	if err != nil {
		h.writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if baseVersion != "" {
		if baseSel.Start, baseSel.End, err = VersionRange(deploys, sel.Service, baseVersion, winStart, winEnd); err != nil {
			h.writeError(w, http.StatusBadRequest, "baseline_"+err.Error())
			return
		}
	}
	base, ok := h.mergeSelection(w, r, baseSel)
	if !ok {
		return
	}
	comp, ok := h.mergeSelection(w, r, sel)
	if !ok {
		return
	}
	fg := DiffFlameGraph(base.Profile, comp.Profile, frac)
	out := struct {
		Service    string            `json:"service"`
		Type       string            `json:"type"`
		Unit       string            `json:"unit"`
		Labels     map[string]string `json:"labels,omitempty"`
		SpanID     string            `json:"span_id,omitempty"`
		Version    string            `json:"version,omitempty"`
		BaseVer    string            `json:"baseline_version,omitempty"`
		Baseline   rangeView         `json:"baseline"`
		Comparison rangeView         `json:"comparison"`
		FlameGraph *DiffNode         `json:"flamegraph"`
		Changes    []FunctionChange  `json:"changes"`
	}{
		Service: sel.Service, Type: sel.Type.Name, Unit: sel.Type.Unit, Labels: sel.Labels, SpanID: sel.SpanID,
		Version: version, BaseVer: baseVersion,
		Baseline:   rangeView{Start: baseSel.Start.UTC(), End: baseSel.End.UTC(), Profiles: base.Profiles, Total: fg.Baseline},
		Comparison: rangeView{Start: sel.Start.UTC(), End: sel.End.UTC(), Profiles: comp.Profiles, Total: fg.Comparison},
		FlameGraph: fg,
		Changes:    TopChanges(base.Profile, comp.Profile, limit),
	}
	h.writeData(w, out)
}
