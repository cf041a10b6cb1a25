package promapi

import (
	"cmp"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"

	"github.com/prometheus/prometheus/model/metadata"
)

// MetadataSource holds metric metadata that does not come from scrape
// targets (remote_write, OTLP, vigil's derived series);
// *internal/metricmeta.Store satisfies it.
type MetadataSource interface {
	// Get returns the variants of one metric family.
	Get(family string) []metadata.Metadata
	// All returns every family's variants.
	All() map[string][]metadata.Metadata
}

// metadataHandler serves /api/v1/metadata as Prometheus does from its scrape
// targets, and adds the families of the MetadataSource. Prometheus's own
// handler only reads targets, so it stays out of this endpoint.
type metadataHandler struct {
	targets Targets
	source  MetadataSource
}

func (h metadataHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	limit, ok := intParam(w, r, "limit")
	if !ok {
		return
	}
	limitPerMetric, ok := intParam(w, r, "limit_per_metric")
	if !ok {
		return
	}
	metric := r.FormValue("metric")
	sets := map[string]map[metadata.Metadata]struct{}{}
	add := func(family string, md metadata.Metadata) {
		ms, ok := sets[family]
		if limitPerMetric > 0 && len(ms) >= limitPerMetric {
			return
		}
		if !ok {
			ms = map[metadata.Metadata]struct{}{}
			sets[family] = ms
		}
		ms[md] = struct{}{}
	}
	for _, tt := range h.targets.TargetsActive() {
		for _, t := range tt {
			if metric == "" {
				for _, mm := range t.ListMetadata() {
					add(mm.MetricFamily, metadata.Metadata{Type: mm.Type, Help: mm.Help, Unit: mm.Unit})
				}
			} else if mm, ok := t.GetMetadata(metric); ok {
				add(mm.MetricFamily, metadata.Metadata{Type: mm.Type, Help: mm.Help, Unit: mm.Unit})
			}
		}
	}
	if h.source != nil {
		if metric == "" {
			for family, vs := range h.source.All() {
				for _, md := range vs {
					add(family, md)
				}
			}
		} else {
			for _, md := range h.source.Get(metric) {
				add(metric, md)
			}
		}
	}
	// Families in name order, so that a limit cuts the same list each time
	// (Prometheus cuts in map order).
	names := make([]string, 0, len(sets))
	for name := range sets {
		names = append(names, name)
	}
	slices.Sort(names)
	if limit >= 0 && len(names) > limit {
		names = names[:limit]
	}
	res := make(map[string][]metadata.Metadata, len(names))
	for _, name := range names {
		vs := make([]metadata.Metadata, 0, len(sets[name]))
		for md := range sets[name] {
			vs = append(vs, md)
		}
		slices.SortFunc(vs, func(a, b metadata.Metadata) int {
			return cmp.Or(cmp.Compare(a.Type, b.Type), cmp.Compare(a.Unit, b.Unit), cmp.Compare(a.Help, b.Help))
		})
		res[name] = vs
	}
	// Field order and encoding as Prometheus writes them.
	body, err := json.Marshal(struct {
		Status string                         `json:"status"`
		Data   map[string][]metadata.Metadata `json:"data"`
	}{"success", res})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// intParam reads an optional integer parameter (-1 if absent), answering
// 400 as Prometheus does when it is not a number.
func intParam(w http.ResponseWriter, r *http.Request, name string) (int, bool) {
	s := r.FormValue(name)
	if s == "" {
		return -1, true
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		body, _ := json.Marshal(struct {
			Status    string `json:"status"`
			ErrorType string `json:"errorType"`
			Error     string `json:"error"`
		}{"error", "bad_data", name + " must be a number"})
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write(body)
		return 0, false
	}
	return n, true
}
