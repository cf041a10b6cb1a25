package lokiapi

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-observability/vigil/internal/logql"
)

// detectedField is one entry of detected_fields.
type detectedField struct {
	Label       string   `json:"label"`
	Type        string   `json:"type"`
	Cardinality int      `json:"cardinality"`
	Parsers     []string `json:"parsers"`
}

// fieldStats gathers what the sampled lines held of one field.
type fieldStats struct {
	values  map[string]struct{}
	parsers []string
	typ     string
}

// detectedFields answers which fields the newest lines of a selector
// hold, as | json or | logfmt would extract them or as structured
// metadata, with their type and how many values they took: what Grafana's
// field browser lists. It reads line_limit lines (1000 by default).
func (h *handler) detectedFields(w http.ResponseWriter, r *http.Request) {
	v, start, end, ok := h.rangeParams(w, r)
	if !ok {
		return
	}
	lineLimit, err := intParam(v, "line_limit", 1000)
	if err != nil {
		h.fail(w, r, bad(err))
		return
	}
	fieldLimit, err := intParam(v, "field_limit", 1000)
	if err != nil {
		h.fail(w, r, bad(err))
		return
	}
	if lineLimit > maxLimit {
		h.fail(w, r, bad(errors.New("line_limit: at most 5000 lines are sampled")))
		return
	}
	lq, err := logql.ParseLogQuery(first(v, "query"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	streams, err := h.src.Streams(r.Context(), lq.Matchers, start, end)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	fields := map[string]*fieldStats{}
	note := func(parser, name, value string) {
		if value == "" {
			return // a bare logfmt word tells nothing of a field
		}
		f := fields[name]
		if f == nil {
			f = &fieldStats{values: map[string]struct{}{}}
			fields[name] = f
		}
		f.values[value] = struct{}{}
		if parser != "" && !slices.Contains(f.parsers, parser) {
			f.parsers = append(f.parsers, parser)
		}
		f.typ = widen(f.typ, valueType(value))
	}
	det := logql.NewFieldDetector()
	for e, err := range h.src.Entries(r.Context(), logql.EntryQuery{Streams: streams, Start: start, End: end, Limit: lineLimit}) {
		if err != nil {
			h.fail(w, r, err)
			return
		}
		e.Metadata.Range(func(l labels.Label) { note("", l.Name, l.Value) })
		det.Detect(e.Line, note)
	}
	out := struct {
		Fields []detectedField `json:"fields"`
		Limit  int             `json:"limit"`
	}{Fields: []detectedField{}, Limit: fieldLimit}
	for _, name := range sortedKeys(fields) {
		if len(out.Fields) == fieldLimit {
			break
		}
		f := fields[name]
		slices.Sort(f.parsers)
		out.Fields = append(out.Fields, detectedField{Label: name, Type: f.typ, Cardinality: len(f.values), Parsers: f.parsers})
	}
	h.writeJSON(w, out)
}

// valueType names a value's type as detected_fields does.
func valueType(v string) string {
	if _, err := strconv.ParseInt(v, 10, 64); err == nil {
		return "int"
	}
	if _, err := strconv.ParseFloat(v, 64); err == nil {
		return "float"
	}
	if _, err := strconv.ParseBool(v); err == nil {
		return "boolean"
	}
	if _, err := time.ParseDuration(v); err == nil {
		return "duration"
	}
	return "string"
}

// widen is the type that holds values of both types: int widens to
// float, anything else mixed is a string.
func widen(a, b string) string {
	switch {
	case a == "" || a == b:
		return b
	case a == "int" && b == "float", a == "float" && b == "int":
		return "float"
	}
	return "string"
}
