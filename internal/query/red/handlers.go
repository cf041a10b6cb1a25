package red

import (
	"cmp"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/query/httpapi"
	vstorage "github.com/vigil-observability/vigil/internal/storage"
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
	Start float64 `json:"start"`
	End   float64 `json:"end"`
	Step  float64 `json:"step"`
	// Covered is the seconds the rates are over: from where the data
	// begins (if after start) to end (storage.REDCovered).
	Covered    float64 `json:"covered"`
	Services   *[]row  `json:"services,omitempty"`
	Operations *[]row  `json:"operations,omitempty"`
}

// covered is the part of the window the rows have data for.
func covered(got []vstorage.REDRow, w window) time.Duration {
	return vstorage.REDCovered(vstorage.REDQuery{Start: w.start, End: w.end}, got)
}

// rows turns the store's figures into answer rows with sparklines of
// every bin of the window (rate 0 and no error ratio or p99 where a bin
// has no spans). Rates are over the part of the window with data.
func rows(got []vstorage.REDRow, w window, operations bool) []row {
	out := make([]row, 0, len(got))
	secs, step := covered(got, w).Seconds(), w.step()
	nBins := int((w.end.Sub(w.start) + step - 1) / step)
	for _, g := range got {
		r := row{Name: g.Service, Rate: nullable(float64(g.Calls) / secs), ErrorRatio: nullable(math.NaN()),
			P50: seconds(g.P50), P95: seconds(g.P95), P99: seconds(g.P99)}
		if operations {
			r.Name, r.Kind = g.Operation, kindName(g.Kind)
		}
		if g.Calls > 0 {
			r.ErrorRatio = nullable(float64(g.Errors) / float64(g.Calls))
		}
		sp := &sparkSet{Rate: make([]point, nBins), ErrorRatio: make([]point, nBins), P99: make([]point, nBins)}
		for b := range nBins {
			t := unix(w.start.Add(time.Duration(b) * step))
			sp.Rate[b], sp.ErrorRatio[b], sp.P99[b] = point{t, 0}, point{t, math.NaN()}, point{t, math.NaN()}
		}
		for _, bin := range g.Bins {
			b := int(bin.Start.Sub(w.start) / step)
			if b < 0 || b >= nBins || bin.Calls == 0 {
				continue
			}
			sp.Rate[b].V = float64(bin.Calls) / step.Seconds()
			sp.ErrorRatio[b].V = float64(bin.Errors) / float64(bin.Calls)
			sp.P99[b].V = bin.P99.Seconds()
		}
		r.Series = sp
		out = append(out, r)
	}
	return out
}

func seconds(d time.Duration) nullable { return nullable(d.Seconds()) }

func (s *Service) services(w http.ResponseWriter, r *http.Request) {
	win, err := s.parseWindow(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	got, err := s.spans.RED(r.Context(), vstorage.REDQuery{Start: win.start, End: win.end, Step: win.step()})
	if err != nil {
		s.queryError(w, r, err)
		return
	}
	svcs := rows(got, win, false)
	writeJSON(w, map[string]any{"data": redData{
		Start: unix(win.start), End: unix(win.end), Step: win.step().Seconds(), Covered: covered(got, win).Seconds(), Services: &svcs,
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
	got, err := s.spans.RED(r.Context(), vstorage.REDQuery{Start: win.start, End: win.end, Step: win.step(), Service: svc})
	if err != nil {
		s.queryError(w, r, err)
		return
	}
	ops := rows(got, win, true)
	writeJSON(w, map[string]any{"data": redData{
		Start: unix(win.start), End: unix(win.end), Step: win.step().Seconds(), Covered: covered(got, win).Seconds(), Operations: &ops,
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
	got, err := s.spans.RED(ctx, vstorage.REDQuery{Start: win.start, End: win.end})
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
	// Edges' rates are over the same part of the window as the nodes':
	// increase() over a series younger than the window counts only its
	// own life, so dividing by the whole window would understate it.
	secs := covered(got, win).Seconds()
	nodes := map[string]node{}
	for _, rw := range rows(got, win, false) {
		nodes[rw.Name] = node{ID: rw.Name, Rate: rw.Rate, ErrorRatio: rw.ErrorRatio}
	}
	edges := []edge{}
	for _, smp := range total {
		c, sv := smp.Metric.Get("client"), smp.Metric.Get("server")
		e := edge{Source: c, Target: sv, Rate: nullable(smp.F / secs), Calls: uint64(math.Round(max(0, smp.F)))}
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
	writeJSON(w, map[string]any{"data": map[string]any{"nodes": nodeList, "edges": edges, "covered": secs}})
}

func sortDeps(d []vstorage.Dependency) {
	slices.SortFunc(d, func(a, b vstorage.Dependency) int {
		return cmp.Or(cmp.Compare(a.Parent, b.Parent), cmp.Compare(a.Child, b.Child))
	})
}

// kindName spells a span kind as Jaeger does: server, client... or "".
func kindName(k ptrace.SpanKind) string {
	if k == ptrace.SpanKindUnspecified {
		return ""
	}
	return strings.ToLower(k.String())
}

func unix(t interface{ UnixMilli() int64 }) float64 { return float64(t.UnixMilli()) / 1000 }

// queryError answers a failed read as every query API does
// (httpapi.ReadFailure). What neither the store nor PromQL foresaw is
// answered as retryable: the usual cause is a query that ran out of time
// or slots while the server is busy.
func (s *Service) queryError(w http.ResponseWriter, r *http.Request, err error) {
	f := httpapi.ReadFailure(r.Context(), err, httpapi.Failure{
		Code: http.StatusServiceUnavailable, Msg: "querying span metrics failed; retry later", RetryAfter: "1", Level: slog.LevelError,
	})
	s.logger.Log(r.Context(), f.Level, "red: query failed", "err", err)
	f.Write(w, writeError)
}

// encodingFailed is the answer to a value that does not encode.
var encodingFailed = []byte(`{"error":"internal error encoding the response","errorType":"unavailable","status":"error"}` + "\n")

func writeJSON(w http.ResponseWriter, v any) {
	_, _ = httpapi.WriteJSON(w, http.StatusOK, v, encodingFailed)
}

// writeError answers in the Prometheus API's error shape, which the UI
// and Grafana read already.
var writeError httpapi.ErrorWriter = httpapi.PrometheusError
