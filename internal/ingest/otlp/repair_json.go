package otlp

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"

	"github.com/vigil-observability/vigil/internal/ingest/limits"
)

// OTLP/JSON repair: the body is decoded generically, items whose hex ids
// pdata would refuse are removed, and the rest is re-encoded. Numbers are
// kept as written (json.Number) so 64-bit values survive the round trip.

// jsonStep is one level of the path from the request to a list of items;
// keys are the camelCase and snake_case spellings pdata accepts.
type jsonStep struct {
	keys []string
	// object marks a step into a single object rather than a list.
	object bool
}

// jsonID is an id field of an item and how long its hex form must be.
type jsonID struct {
	keys   []string
	hexLen int
	reason string
}

// jsonFilter removes the items at the end of path whose ids are malformed.
type jsonFilter struct {
	item string
	path []jsonStep
	ids  []jsonID
	// reject counts removed items as rejected; otherwise the removal is an
	// alteration of the enclosing item (a span's link, a point's exemplar).
	reject bool
	// then is applied to every item kept.
	then *jsonFilter
}

var (
	traceIDJSON = jsonID{keys: []string{"traceId", "trace_id"}, hexLen: 2 * traceIDLen, reason: limits.ReasonInvalidTraceID}
	spanIDJSON  = jsonID{keys: []string{"spanId", "span_id"}, hexLen: 2 * spanIDLen, reason: limits.ReasonInvalidSpanID}
	parentJSON  = jsonID{keys: []string{"parentSpanId", "parent_span_id"}, hexLen: 2 * spanIDLen, reason: limits.ReasonInvalidSpanID}

	tracesShape = &jsonFilter{
		item: "spans",
		path: []jsonStep{
			{keys: []string{"resourceSpans", "resource_spans"}},
			{keys: []string{"scopeSpans", "scope_spans"}},
			{keys: []string{"spans"}},
		},
		ids:    []jsonID{traceIDJSON, spanIDJSON, parentJSON},
		reject: true,
		then: &jsonFilter{
			path: []jsonStep{{keys: []string{"links"}}},
			ids:  []jsonID{traceIDJSON, spanIDJSON},
		},
	}
	logsShape = &jsonFilter{
		item: "log records",
		path: []jsonStep{
			{keys: []string{"resourceLogs", "resource_logs"}},
			{keys: []string{"scopeLogs", "scope_logs"}},
			{keys: []string{"logRecords", "log_records"}},
		},
		ids:    []jsonID{traceIDJSON, spanIDJSON},
		reject: true,
	}
	metricsShape = &jsonFilter{
		item: "data points",
		path: []jsonStep{
			{keys: []string{"resourceMetrics", "resource_metrics"}},
			{keys: []string{"scopeMetrics", "scope_metrics"}},
			{keys: []string{"metrics"}},
			{keys: []string{"gauge", "sum", "histogram", "exponentialHistogram", "exponential_histogram"}, object: true},
			{keys: []string{"dataPoints", "data_points"}},
			{keys: []string{"exemplars"}},
		},
		ids: []jsonID{traceIDJSON, spanIDJSON},
	}
)

func repairJSON(body []byte, shape *jsonFilter) ([]byte, limits.Report, error) {
	r := limits.Report{Item: shape.item}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, r, err
	}
	if doc == nil {
		return nil, r, errors.New("request is not a JSON object")
	}
	shape.apply(doc, 0, &r)
	out, err := json.Marshal(doc)
	return out, r, err
}

func (f *jsonFilter) apply(obj map[string]any, depth int, r *limits.Report) {
	step := f.path[depth]
	last := depth == len(f.path)-1
	for _, k := range step.keys {
		v, ok := obj[k]
		if !ok {
			continue
		}
		switch {
		case last:
			if list, ok := v.([]any); ok {
				obj[k] = f.filter(list, r)
			}
		case step.object:
			if o, ok := v.(map[string]any); ok {
				f.apply(o, depth+1, r)
			}
		default:
			list, _ := v.([]any)
			for _, e := range list {
				if o, ok := e.(map[string]any); ok {
					f.apply(o, depth+1, r)
				}
			}
		}
	}
}

func (f *jsonFilter) filter(list []any, r *limits.Report) []any {
	return slices.DeleteFunc(list, func(e any) bool {
		o, ok := e.(map[string]any)
		if !ok {
			return false // not ours to judge; pdata will
		}
		for _, id := range f.ids {
			if !id.valid(o) {
				if f.reject {
					r.Reject(id.reason, 1)
				} else {
					r.Alter(id.reason, 1)
				}
				return true
			}
		}
		if f.then != nil {
			f.then.apply(o, 0, r)
		}
		return false
	})
}

// valid reports whether every spelling of the id present in o is a string
// pdata accepts: empty, or hex of exactly the right length.
func (id jsonID) valid(o map[string]any) bool {
	for _, k := range id.keys {
		v, ok := o[k]
		if !ok {
			continue
		}
		s, ok := v.(string)
		if !ok {
			return false
		}
		if s == "" {
			continue
		}
		if len(s) != id.hexLen {
			return false
		}
		if _, err := hex.DecodeString(s); err != nil {
			return false
		}
	}
	return true
}
