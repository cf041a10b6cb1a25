package red

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/promql"

	"github.com/vigil-observability/vigil/internal/query/jaegerapi"
)

// row is one service's or operation's RED figures.
type row struct {
	Name       string    `json:"name"`
	Kind       string    `json:"kind,omitempty"`
	Rate       nullable  `json:"rate"`
	ErrorRatio nullable  `json:"errorRatio"`
	P50        nullable  `json:"p50"`
	P95        nullable  `json:"p95"`
	P99        nullable  `json:"p99"`
	Series     *sparkSet `json:"series,omitempty"`
}

type sparkSet struct {
	Rate       []point `json:"rate"`
	ErrorRatio []point `json:"errorRatio"`
	P99        []point `json:"p99"`
}

// point is [unix seconds, value or null].
type point struct{ T, V float64 }

func (p point) MarshalJSON() ([]byte, error) {
	b := append([]byte{'['}, strconv.AppendFloat(nil, p.T, 'f', -1, 64)...)
	b = append(b, ',')
	if math.IsNaN(p.V) || math.IsInf(p.V, 0) {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendFloat(b, p.V, 'g', -1, 64)
	}
	return append(b, ']'), nil
}

// redData is the answer of /api/red/services (Services set) and
// /api/red/operations (Operations set).
type redData struct {
	Start      float64 `json:"start"`
	End        float64 `json:"end"`
	Step       float64 `json:"step"`
	Services   *[]row  `json:"services,omitempty"`
	Operations *[]row  `json:"operations,omitempty"`
}

// query is one RED computation: which series, grouped how.
type query struct {
	sel     string   // label matchers inside {}, may be empty
	groupBy []string // labels of a row
	series  bool     // also compute sparklines
}

// compute runs the RED queries for q and returns rows keyed by the
// groupBy label values.
func (s *Service) compute(ctx context.Context, w window, q query) (map[string]*row, error) {
	by := strings.Join(q.groupBy, ", ")
	withSel := func(extra string) string {
		parts := []string{}
		if q.sel != "" {
			parts = append(parts, q.sel)
		}
		if extra != "" {
			parts = append(parts, extra)
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	all, errs := withSel(""), withSel(LabelStatus+`="`+statusError+`"`)
	R := w.rangeSel()
	calls, err := s.instant(ctx, fmt.Sprintf(`sum by (%s) (increase(%s%s[%s]))`, by, CallsMetric, all, R), w.end)
	if err != nil {
		return nil, err
	}
	rows := map[string]*row{}
	for _, smp := range calls {
		k := key(smp.Metric, q.groupBy...)
		rows[k] = &row{Name: smp.Metric.Get(q.groupBy[0]), Rate: nullable(smp.F / w.seconds())}
		if len(q.groupBy) > 1 {
			rows[k].Kind = kindName(smp.Metric.Get(q.groupBy[1]))
		}
	}
	if len(rows) == 0 {
		return rows, nil
	}
	if len(rows) > maxSeriesPerAnswer {
		return nil, fmt.Errorf("%w: %d rows; narrow the query", errTooMany, len(rows))
	}
	callsBy := byKey(calls, q.groupBy...)
	errVec, err := s.instant(ctx, fmt.Sprintf(`sum by (%s) (increase(%s%s[%s]))`, by, CallsMetric, errs, R), w.end)
	if err != nil {
		return nil, err
	}
	errBy := byKey(errVec, q.groupBy...)
	quantiles := map[float64]map[string]float64{}
	for _, qt := range []float64{0.5, 0.95, 0.99} {
		v, err := s.instant(ctx, fmt.Sprintf(`histogram_quantile(%g, sum by (%s, le) (increase(%s_bucket%s[%s])))`, qt, by, DurationMetric, all, R), w.end)
		if err != nil {
			return nil, err
		}
		quantiles[qt] = byKey(v, q.groupBy...)
	}
	for k, r := range rows {
		if c := callsBy[k]; c > 0 {
			r.ErrorRatio = nullable(errBy[k] / c)
		} else {
			r.ErrorRatio = nullable(math.NaN())
		}
		r.P50, r.P95, r.P99 = optional(quantiles[0.5], k), optional(quantiles[0.95], k), optional(quantiles[0.99], k)
	}
	if !q.series {
		return rows, nil
	}
	W := w.rateWindow()
	rate := fmt.Sprintf(`sum by (%s) (rate(%s%s[%s]))`, by, CallsMetric, all, W)
	exprs := []string{
		rate,
		fmt.Sprintf(`sum by (%s) (rate(%s%s[%s])) / %s`, by, CallsMetric, errs, W, rate),
		fmt.Sprintf(`histogram_quantile(0.99, sum by (%s, le) (rate(%s_bucket%s[%s])))`, by, DurationMetric, all, W),
	}
	for i, e := range exprs {
		m, err := s.ranged(ctx, e, w)
		if err != nil {
			return nil, err
		}
		for _, series := range m {
			r := rows[key(series.Metric, q.groupBy...)]
			if r == nil {
				continue
			}
			if r.Series == nil {
				r.Series = &sparkSet{}
			}
			pts := toPoints(series)
			switch i {
			case 0:
				r.Series.Rate = pts
			case 1:
				r.Series.ErrorRatio = pts
			case 2:
				r.Series.P99 = pts
			}
		}
	}
	for _, r := range rows {
		if r.Series == nil {
			r.Series = &sparkSet{}
		}
		for _, p := range []*[]point{&r.Series.Rate, &r.Series.ErrorRatio, &r.Series.P99} {
			if *p == nil {
				*p = []point{}
			}
		}
	}
	return rows, nil
}

func toPoints(s promql.Series) []point {
	out := make([]point, 0, len(s.Floats))
	for _, f := range s.Floats {
		out = append(out, point{T: float64(f.T) / 1000, V: f.F})
	}
	return out
}

var errTooMany = errors.New("too many series")

// serviceRows computes a row per service from its entry spans (server and
// consumer), and from all its spans for services that have no entry spans.
func (s *Service) serviceRows(ctx context.Context, w window, series bool) ([]row, error) {
	rows, err := s.compute(ctx, w, query{sel: LabelSpanKind + `=~"` + entryKinds + `"`, groupBy: []string{LabelService}, series: series})
	if err != nil {
		return nil, err
	}
	known, err := s.instant(ctx, fmt.Sprintf(`count by (%s) (last_over_time(%s[%s]))`, LabelService, CallsMetric, w.rangeSel()), w.end)
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, smp := range known {
		if name := smp.Metric.Get(LabelService); rows[name] == nil {
			missing = append(missing, regexp.QuoteMeta(name))
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		more, err := s.compute(ctx, w, query{sel: LabelService + `=~` + strconv.Quote(strings.Join(missing, "|")), groupBy: []string{LabelService}, series: series})
		if err != nil {
			return nil, err
		}
		for k, r := range more {
			rows[k] = r
		}
	}
	return sortedRows(rows), nil
}

func sortedRows(m map[string]*row) []row {
	out := make([]row, 0, len(m))
	for _, r := range m {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b row) int { return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Kind, b.Kind)) })
	return out
}

func (s *Service) services(w http.ResponseWriter, r *http.Request) {
	win, err := s.parseWindow(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	rows, err := s.serviceRows(r.Context(), win, true)
	if err != nil {
		s.queryError(w, r, err)
		return
	}
	if rows == nil {
		rows = []row{}
	}
	writeJSON(w, map[string]any{"data": redData{
		Start: unix(win.start), End: unix(win.end), Step: win.step().Seconds(), Services: &rows,
	}})
}

func (s *Service) operations(w http.ResponseWriter, r *http.Request) {
	win, err := s.parseWindow(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	svc := r.URL.Query().Get("service")
	if svc == "" {
		writeError(w, http.StatusBadRequest, "parameter service is required")
		return
	}
	rows, err := s.compute(r.Context(), win, query{
		sel: LabelService + `=` + strconv.Quote(svc), groupBy: []string{LabelSpanName, LabelSpanKind}, series: true,
	})
	if err != nil {
		s.queryError(w, r, err)
		return
	}
	ops := sortedRows(rows)
	writeJSON(w, map[string]any{"data": redData{
		Start: unix(win.start), End: unix(win.end), Step: win.step().Seconds(), Operations: &ops,
	}})
}

type node struct {
	ID         string   `json:"id"`
	Rate       nullable `json:"rate"`
	ErrorRatio nullable `json:"errorRatio"`
}

type edge struct {
	Source     string   `json:"source"`
	Target     string   `json:"target"`
	Rate       nullable `json:"rate"`
	ErrorRatio nullable `json:"errorRatio"`
	Calls      uint64   `json:"calls"`
}

func (s *Service) serviceMap(w http.ResponseWriter, r *http.Request) {
	win, err := s.parseWindow(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx := r.Context()
	rows, err := s.serviceRows(ctx, win, false)
	if err != nil {
		s.queryError(w, r, err)
		return
	}
	total, err := s.instant(ctx, fmt.Sprintf(`sum by (client, server) (increase(%s[%s]))`, GraphRequests, win.rangeSel()), win.end)
	if err != nil {
		s.queryError(w, r, err)
		return
	}
	failed, err := s.instant(ctx, fmt.Sprintf(`sum by (client, server) (increase(%s[%s]))`, GraphFailed, win.rangeSel()), win.end)
	if err != nil {
		s.queryError(w, r, err)
		return
	}
	failedBy := byKey(failed, "client", "server")
	nodes := map[string]node{}
	for _, rw := range rows {
		nodes[rw.Name] = node{ID: rw.Name, Rate: rw.Rate, ErrorRatio: rw.ErrorRatio}
	}
	edges := []edge{}
	for _, smp := range total {
		c, sv := smp.Metric.Get("client"), smp.Metric.Get("server")
		e := edge{Source: c, Target: sv, Rate: nullable(smp.F / win.seconds()), Calls: uint64(math.Round(max(0, smp.F)))}
		if smp.F > 0 {
			e.ErrorRatio = nullable(failedBy[key(smp.Metric, "client", "server")] / smp.F)
		} else {
			e.ErrorRatio = nullable(math.NaN())
		}
		edges = append(edges, e)
		for _, id := range []string{c, sv} {
			if _, ok := nodes[id]; !ok {
				nodes[id] = node{ID: id, Rate: nullable(math.NaN()), ErrorRatio: nullable(math.NaN())}
			}
		}
	}
	slices.SortFunc(edges, func(a, b edge) int { return cmp.Or(cmp.Compare(a.Source, b.Source), cmp.Compare(a.Target, b.Target)) })
	nodeList := make([]node, 0, len(nodes))
	for _, n := range nodes {
		nodeList = append(nodeList, n)
	}
	slices.SortFunc(nodeList, func(a, b node) int { return cmp.Compare(a.ID, b.ID) })
	writeJSON(w, map[string]any{"data": map[string]any{"nodes": nodeList, "edges": edges}})
}

func sortDeps(d []jaegerapi.Dependency) {
	slices.SortFunc(d, func(a, b jaegerapi.Dependency) int {
		return cmp.Or(cmp.Compare(a.Parent, b.Parent), cmp.Compare(a.Child, b.Child))
	})
}

// kindName turns SPAN_KIND_SERVER into server, as Jaeger spells kinds.
func kindName(k string) string {
	return strings.ToLower(strings.TrimPrefix(k, "SPAN_KIND_"))
}

func unix(t interface{ UnixMilli() int64 }) float64 { return float64(t.UnixMilli()) / 1000 }

func (s *Service) queryError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case r.Context().Err() != nil:
		writeError(w, http.StatusServiceUnavailable, "request cancelled")
	case errors.Is(err, errTooMany):
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		s.logger.Error("red: query failed", "err", err)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "querying span metrics failed; retry later")
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		writeError(w, http.StatusInternalServerError, "internal error encoding the response")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(buf.Bytes())
}

// writeError answers in the Prometheus API's error shape, as vigil's other
// JSON APIs do.
func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"status": "error", "errorType": errType(code), "error": msg})
}

func errType(code int) string {
	if code == http.StatusBadRequest {
		return "bad_data"
	}
	return "unavailable"
}
