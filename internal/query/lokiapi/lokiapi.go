// Package lokiapi serves Loki's HTTP query API over vigil's log store, so
// that Grafana's Loki data source and logcli work unchanged: query and
// query_range (LogQL, evaluated by internal/logql), labels, label values,
// series, index/stats, index/volume and volume_range, detected_labels and
// detected_fields. Answers have Loki's shapes; errors are plain text with
// a 4xx or 5xx status, as Loki answers them and Grafana shows them.
package lokiapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-observability/vigil/internal/logql"
	"github.com/vigil-observability/vigil/internal/query/httpapi"
	"github.com/vigil-observability/vigil/internal/query/querylimit"
)

// PathPrefix is where Loki's API lives; the push API beside it is
// mounted by the ingest side.
const PathPrefix = "/loki/api/v1"

// Routes lists the path patterns NewHandler serves, for mounting.
var Routes = []string{
	PathPrefix + "/query",
	PathPrefix + "/query_range",
	PathPrefix + "/labels",
	PathPrefix + "/label",
	PathPrefix + "/label/",
	PathPrefix + "/series",
	PathPrefix + "/index/stats",
	PathPrefix + "/index/volume",
	PathPrefix + "/index/volume_range",
	PathPrefix + "/detected_labels",
	PathPrefix + "/detected_fields",
}

// ReadPOSTRoutes are the routes that take their parameters as a form post
// too (Loki accepts both), and only read.
var ReadPOSTRoutes = []string{
	PathPrefix + "/query",
	PathPrefix + "/query_range",
	PathPrefix + "/labels",
	PathPrefix + "/series",
	PathPrefix + "/index/stats",
	PathPrefix + "/index/volume",
	PathPrefix + "/index/volume_range",
}

// Options configures the handler.
type Options struct {
	// Logs is the store read. Required.
	Logs LogStore
	// Engine evaluates LogQL; nil means logql.NewEngine's defaults.
	Engine *logql.Engine
	// Logger receives storage failures; nil discards them.
	Logger *slog.Logger
	// Registerer receives vigil_query_requests_total{api="loki",code}; nil
	// registers nothing.
	Registerer prometheus.Registerer
	// Now is the clock for default ranges; nil means time.Now.
	Now func() time.Time
	// Slots bounds concurrent queries (nil: no bound).
	Slots *querylimit.Slots
}

type handler struct {
	src      *Source
	engine   *logql.Engine
	logger   *slog.Logger
	now      func() time.Time
	requests *prometheus.CounterVec
}

// NewHandler returns the Loki query API handler. It matches full request
// paths; mount it at each of Routes. It panics when opts.Logs is nil, a
// wiring bug.
func NewHandler(opts Options) http.Handler {
	if opts.Logs == nil {
		panic("lokiapi: Options.Logs is nil")
	}
	h := &handler{src: NewSource(opts.Logs), engine: opts.Engine, logger: opts.Logger, now: opts.Now}
	if h.engine == nil {
		h.engine = logql.NewEngine(logql.EngineOptions{})
	}
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	h.requests = httpapi.NewRequestCounter("loki", opts.Registerer)
	mux := http.NewServeMux()
	get := func(path string, f http.HandlerFunc) {
		mux.HandleFunc("GET "+path, f)
	}
	both := func(path string, f http.HandlerFunc) {
		get(path, f)
		mux.HandleFunc("POST "+path, f)
	}
	both(PathPrefix+"/query", h.query)
	both(PathPrefix+"/query_range", h.queryRange)
	both(PathPrefix+"/labels", h.labels)
	get(PathPrefix+"/label", h.labels)
	get(PathPrefix+"/label/{name}/values", h.labelValues)
	both(PathPrefix+"/series", h.series)
	both(PathPrefix+"/index/stats", h.indexStats)
	both(PathPrefix+"/index/volume", h.volume)
	both(PathPrefix+"/index/volume_range", h.volumeRange)
	get(PathPrefix+"/detected_labels", h.detectedLabels)
	get(PathPrefix+"/detected_fields", h.detectedFields)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h.writeError(w, http.StatusNotFound, "404 page not found: "+r.URL.Path)
	})
	if opts.Slots == nil {
		return mux
	}
	return opts.Slots.Handler(mux, h.writeError)
}

// writeError answers as Loki does: the message as plain text.
func (h *handler) writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(msg + "\n"))
	h.requests.WithLabelValues(strconv.Itoa(code)).Inc()
}

// fail answers err: a bad query or parameter is a 400 with its reason, a
// query over its limits a 400 too (retrying does not help), the store's
// failures as every query API answers them.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var pe *logql.Error
	if errors.As(err, &pe) {
		// Loki's wording, which Grafana users know.
		h.writeError(w, http.StatusBadRequest, fmt.Sprintf("parse error at line %d, col %d: %s", pe.Line, pe.Col, pe.Msg))
		return
	}
	for _, e := range clientErrors {
		if errors.Is(err, e) {
			h.writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	f := httpapi.ReadFailure(r.Context(), err, httpapi.Failure{
		Code: http.StatusInternalServerError, Msg: "internal error reading logs", Level: slog.LevelError,
	})
	h.logger.Log(r.Context(), f.Level, "lokiapi: query failed", "path", r.URL.Path, "err", err)
	f.Write(w, h.writeError)
}

// clientErrors are the errors a 400 answers: the query or a parameter is
// wrong, or asks for more than a query may cost; sending it again does
// not help.
var clientErrors = []error{
	errBadRequest, logql.ErrParse, logql.ErrBadQuery, logql.ErrUnsupported, logql.ErrPipeline,
	logql.ErrTooManyEntries, logql.ErrTooManyStreams, logql.ErrTooManySeries, logql.ErrTooManyPoints,
}

// errBadRequest marks a parameter the client got wrong.
var errBadRequest = errors.New("bad request")

type badRequest struct{ err error }

func (b badRequest) Error() string { return b.err.Error() }
func (b badRequest) Unwrap() []error {
	return []error{b.err, errBadRequest}
}

func bad(err error) error { return badRequest{err} }

var encodingFailed = []byte(`{"status":"error","error":"internal error encoding the response"}` + "\n")

func (h *handler) writeJSON(w http.ResponseWriter, v any) {
	code, err := httpapi.WriteJSON(w, http.StatusOK, v, encodingFailed)
	if err != nil {
		h.logger.Error("lokiapi: encoding response failed", "err", err)
	}
	h.requests.WithLabelValues(strconv.Itoa(code)).Inc()
}

// success is Loki's envelope for the metadata endpoints.
type success struct {
	Status string `json:"status"`
	Data   any    `json:"data"`
}

// form parses a request's parameters, from its URL and, for a POST, its
// form body.
func form(r *http.Request) (map[string][]string, error) {
	if err := r.ParseForm(); err != nil {
		return nil, bad(err)
	}
	return r.Form, nil
}

// streamsFor returns the streams of [start, end) that the optional
// selector in query matches; all of them when query is empty.
func (h *handler) streamsFor(ctx context.Context, query string, start, end time.Time) ([]logql.Stream, error) {
	var matchers []*logql.Matcher
	if query != "" {
		lq, err := logql.ParseLogQuery(query)
		if err != nil {
			return nil, err
		}
		matchers = lq.Matchers
	}
	return h.src.Streams(ctx, matchers, start, end)
}

// rangeParams reads a request's parameters and its time range, answering
// the client's mistakes itself; ok is false when it did.
func (h *handler) rangeParams(w http.ResponseWriter, r *http.Request) (v map[string][]string, start, end time.Time, ok bool) {
	v, err := form(r)
	if err != nil {
		h.fail(w, r, err)
		return nil, start, end, false
	}
	if start, end, err = timeRange(v, h.now()); err != nil {
		h.fail(w, r, bad(err))
		return nil, start, end, false
	}
	return v, start, end, true
}

// metaStreams reads the range and optional selector of a metadata call.
func (h *handler) metaStreams(w http.ResponseWriter, r *http.Request, selectorParam string) ([]logql.Stream, time.Time, time.Time, bool) {
	v, start, end, ok := h.rangeParams(w, r)
	if !ok {
		return nil, start, end, false
	}
	var q string
	if qs := v[selectorParam]; len(qs) > 0 {
		q = qs[0]
	}
	streams, err := h.streamsFor(r.Context(), q, start, end)
	if err != nil {
		h.fail(w, r, err)
		return nil, start, end, false
	}
	return streams, start, end, true
}

func (h *handler) labels(w http.ResponseWriter, r *http.Request) {
	streams, _, _, ok := h.metaStreams(w, r, "query")
	if !ok {
		return
	}
	names := map[string]struct{}{}
	for _, s := range streams {
		s.Labels.Range(func(l labels.Label) { names[l.Name] = struct{}{} })
	}
	h.writeJSON(w, success{Status: "success", Data: sortedKeys(names)})
}

func (h *handler) labelValues(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	streams, _, _, ok := h.metaStreams(w, r, "query")
	if !ok {
		return
	}
	values := map[string]struct{}{}
	for _, s := range streams {
		if v := s.Labels.Get(name); v != "" {
			values[v] = struct{}{}
		}
	}
	h.writeJSON(w, success{Status: "success", Data: sortedKeys(values)})
}

func (h *handler) series(w http.ResponseWriter, r *http.Request) {
	v, start, end, ok := h.rangeParams(w, r)
	if !ok {
		return
	}
	selectors := v["match[]"]
	if len(selectors) == 0 {
		selectors = v["match"]
	}
	if len(selectors) == 0 {
		selectors = []string{""}
	}
	seen := map[string]bool{}
	out := []map[string]string{}
	for _, sel := range selectors {
		streams, err := h.streamsFor(r.Context(), sel, start, end)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		for _, s := range streams {
			if k := s.Labels.String(); !seen[k] {
				seen[k] = true
				out = append(out, s.Labels.Map())
			}
		}
	}
	h.writeJSON(w, success{Status: "success", Data: out})
}

// indexStats answers how much a selector would read. vigil has no
// chunks; each stream counts as one, which is what a stream of the range
// costs to open.
func (h *handler) indexStats(w http.ResponseWriter, r *http.Request) {
	streams, _, _, ok := h.metaStreams(w, r, "query")
	if !ok {
		return
	}
	var st struct {
		Streams int   `json:"streams"`
		Chunks  int   `json:"chunks"`
		Bytes   int64 `json:"bytes"`
		Entries int64 `json:"entries"`
	}
	st.Streams, st.Chunks = len(streams), len(streams)
	for _, s := range streams {
		st.Bytes += s.Bytes
		st.Entries += s.Entries
	}
	h.writeJSON(w, st)
}

func (h *handler) detectedLabels(w http.ResponseWriter, r *http.Request) {
	streams, _, _, ok := h.metaStreams(w, r, "query")
	if !ok {
		return
	}
	values := map[string]map[string]struct{}{}
	for _, s := range streams {
		s.Labels.Range(func(l labels.Label) {
			if values[l.Name] == nil {
				values[l.Name] = map[string]struct{}{}
			}
			values[l.Name][l.Value] = struct{}{}
		})
	}
	type detected struct {
		Label       string `json:"label"`
		Cardinality int    `json:"cardinality"`
	}
	out := struct {
		DetectedLabels []detected `json:"detectedLabels"`
	}{DetectedLabels: []detected{}}
	for _, name := range sortedKeys(values) {
		out.DetectedLabels = append(out.DetectedLabels, detected{Label: name, Cardinality: len(values[name])})
	}
	h.writeJSON(w, out)
}

// volumeGroups reads the selector of an index/volume call and the labels
// it groups streams by: targetLabels when given, else the names the
// selector matches on.
func volumeGroups(v map[string][]string) (*logql.LogQuery, []string, error) {
	lq, err := logql.ParseLogQuery(first(v, "query"))
	if err != nil {
		return nil, nil, err
	}
	if agg := first(v, "aggregateBy"); agg != "" && agg != "series" {
		return nil, nil, bad(errors.New(`aggregateBy: only "series" is supported`))
	}
	var by []string
	if t := first(v, "targetLabels"); t != "" {
		for _, name := range strings.Split(t, ",") {
			if name = strings.TrimSpace(name); name != "" {
				by = append(by, name)
			}
		}
	} else {
		for _, m := range lq.Matchers {
			by = append(by, m.Name)
		}
	}
	slices.Sort(by)
	return lq, slices.Compact(by), nil
}

func first(v map[string][]string, name string) string {
	if vs := v[name]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

func (h *handler) volume(w http.ResponseWriter, r *http.Request) {
	v, start, end, ok := h.rangeParams(w, r)
	if !ok {
		return
	}
	limit, err := intParam(v, "limit", 100)
	if err != nil {
		h.fail(w, r, bad(err))
		return
	}
	lq, by, err := volumeGroups(v)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	streams, err := h.src.Streams(r.Context(), lq.Matchers, start, end)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	type group struct {
		labels labels.Labels
		bytes  int64
	}
	groups := map[string]*group{}
	for _, s := range streams {
		b := labels.NewScratchBuilder(len(by))
		for _, name := range by {
			if val := s.Labels.Get(name); val != "" {
				b.Add(name, val)
			}
		}
		ls := b.Labels()
		k := ls.String()
		if groups[k] == nil {
			groups[k] = &group{labels: ls}
		}
		groups[k].bytes += s.Bytes
	}
	list := make([]*group, 0, len(groups))
	for _, g := range groups {
		list = append(list, g)
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].bytes != list[j].bytes {
			return list[i].bytes > list[j].bytes
		}
		return labels.Compare(list[i].labels, list[j].labels) < 0
	})
	if limit > 0 && len(list) > limit {
		list = list[:limit]
	}
	res := make([]vectorSample, 0, len(list))
	for _, g := range list {
		res = append(res, vectorSample{Metric: g.labels.Map(), Value: point{T: end.UnixMilli(), V: float64(g.bytes)}})
	}
	h.writeJSON(w, success{Status: "success", Data: queryData{ResultType: "vector", Result: res}})
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
