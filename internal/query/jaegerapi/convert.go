package jaegerapi

import (
	"cmp"
	"encoding/hex"
	"math"
	"slices"
	"strconv"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// NoServiceName is the process name given to spans whose resource has no
// service.name, the same placeholder Jaeger's own OTLP translation uses so
// that traces look alike whichever backend stored them.
const NoServiceName = "OTLPResourceNoServiceName"

// Tag keys added by the OTLP→Jaeger mapping. They are the keys the Jaeger UI
// and Grafana recognise (span.kind and error drive icons and colouring).
const (
	tagSpanKind          = "span.kind"
	tagError             = "error"
	tagStatusCode        = "otel.status_code"
	tagStatusDescription = "otel.status_description"
	tagScopeName         = "otel.scope.name"
	tagScopeVersion      = "otel.scope.version"
	tagTraceState        = "w3c.tracestate"
	fieldEvent           = "event"
	attrServiceName      = "service.name"
)

// Jaeger value types, as spelled in its JSON model.
const (
	typeString  = "string"
	typeBool    = "bool"
	typeInt64   = "int64"
	typeFloat64 = "float64"
	typeBinary  = "binary"
)

// jaegerSampledFlag is bit 0 of Jaeger's span flags; it has the same meaning
// and position as the W3C sampled bit in the low byte of OTLP span flags.
const jaegerSampledFlag = 1

type jsonTrace struct {
	TraceID   string                 `json:"traceID"`
	Spans     []jsonSpan             `json:"spans"`
	Processes map[string]jsonProcess `json:"processes"`
	Warnings  []string               `json:"warnings"`
}

type jsonSpan struct {
	TraceID       string          `json:"traceID"`
	SpanID        string          `json:"spanID"`
	Flags         uint32          `json:"flags"`
	OperationName string          `json:"operationName"`
	References    []jsonReference `json:"references"`
	StartTime     uint64          `json:"startTime"` // microseconds since the epoch
	Duration      uint64          `json:"duration"`  // microseconds
	Tags          []keyValue      `json:"tags"`
	Logs          []jsonLog       `json:"logs"`
	ProcessID     string          `json:"processID"`
	Warnings      []string        `json:"warnings"`

	// processKey identifies the process until IDs are assigned.
	processKey string
	// startNanos keeps full precision for ordering spans.
	startNanos pcommon.Timestamp
}

type jsonReference struct {
	RefType string `json:"refType"`
	TraceID string `json:"traceID"`
	SpanID  string `json:"spanID"`
}

type jsonLog struct {
	Timestamp uint64     `json:"timestamp"` // microseconds since the epoch
	Fields    []keyValue `json:"fields"`
}

type jsonProcess struct {
	ServiceName string     `json:"serviceName"`
	Tags        []keyValue `json:"tags"`
}

type keyValue struct {
	Key   string `json:"key"`
	Type  string `json:"type"`
	Value any    `json:"value"`
}

// convertTrace turns the spans of one trace into Jaeger's JSON model.
// Spans are ordered by start time (then span id) and processes numbered p1,
// p2, ... in order of first use, so the same stored data always gives the
// same document whatever order the backend returned it in.
func convertTrace(id pcommon.TraceID, td ptrace.Traces) jsonTrace {
	processes := map[string]jsonProcess{}
	var spans []jsonSpan
	for _, rs := range td.ResourceSpans().All() {
		proc := convertProcess(rs.Resource())
		key := processKey(proc)
		for _, ss := range rs.ScopeSpans().All() {
			scopeTags := scopeTags(ss.Scope())
			for _, span := range ss.Spans().All() {
				if _, ok := processes[key]; !ok {
					processes[key] = proc
				}
				js := convertSpan(span, scopeTags)
				js.processKey = key
				spans = append(spans, js)
			}
		}
	}
	slices.SortStableFunc(spans, func(a, b jsonSpan) int {
		return cmp.Or(cmp.Compare(a.startNanos, b.startNanos), strings.Compare(a.SpanID, b.SpanID))
	})

	ids := map[string]string{}
	out := jsonTrace{
		TraceID:   traceIDString(id),
		Spans:     spans,
		Processes: map[string]jsonProcess{},
	}
	for i := range spans {
		pid, ok := ids[spans[i].processKey]
		if !ok {
			pid = "p" + strconv.Itoa(len(ids)+1)
			ids[spans[i].processKey] = pid
			out.Processes[pid] = processes[spans[i].processKey]
		}
		spans[i].ProcessID = pid
	}
	return out
}

func convertProcess(res pcommon.Resource) jsonProcess {
	p := jsonProcess{ServiceName: NoServiceName, Tags: []keyValue{}}
	for k, v := range res.Attributes().All() {
		if k == attrServiceName {
			p.ServiceName = v.AsString()
			continue
		}
		p.Tags = append(p.Tags, attributeTag(k, v))
	}
	// Sorted so that equal resources written with attributes in a different
	// order still collapse into one process.
	slices.SortStableFunc(p.Tags, func(a, b keyValue) int { return strings.Compare(a.Key, b.Key) })
	return p
}

// processKey is an injective encoding of a process: service name and every
// tag's key, type and value, length-prefixed so no two processes collide.
func processKey(p jsonProcess) string {
	var b strings.Builder
	write := func(s string) {
		b.WriteString(strconv.Itoa(len(s)))
		b.WriteByte(':')
		b.WriteString(s)
	}
	write(p.ServiceName)
	for _, t := range p.Tags {
		write(t.Key)
		write(t.Type)
		switch v := t.Value.(type) {
		case string:
			write(v)
		case []byte:
			write(string(v))
		default:
			write(strconv.Quote(jsonScalar(v)))
		}
	}
	return b.String()
}

func jsonScalar(v any) string {
	switch v := v.(type) {
	case bool:
		return strconv.FormatBool(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	return ""
}

func scopeTags(scope pcommon.InstrumentationScope) []keyValue {
	var tags []keyValue
	if n := scope.Name(); n != "" {
		tags = append(tags, stringTag(tagScopeName, n))
	}
	if v := scope.Version(); v != "" {
		tags = append(tags, stringTag(tagScopeVersion, v))
	}
	return tags
}

func convertSpan(span ptrace.Span, scopeTags []keyValue) jsonSpan {
	traceID := traceIDString(span.TraceID())
	js := jsonSpan{
		TraceID:       traceID,
		SpanID:        spanIDString(span.SpanID()),
		OperationName: span.Name(),
		References:    []jsonReference{},
		StartTime:     micros(span.StartTimestamp()),
		Tags:          make([]keyValue, 0, len(scopeTags)+span.Attributes().Len()+5),
		Logs:          []jsonLog{},
		startNanos:    span.StartTimestamp(),
	}
	if span.Flags()&jaegerSampledFlag != 0 {
		js.Flags = jaegerSampledFlag
	}
	if end, start := span.EndTimestamp(), span.StartTimestamp(); end >= start {
		js.Duration = uint64(end-start) / 1000
	} else {
		js.Warnings = append(js.Warnings, "end timestamp is before start timestamp; duration set to 0")
	}

	// The parent goes first: Jaeger UI and Grafana take the first CHILD_OF
	// reference as the parent.
	if p := span.ParentSpanID(); !p.IsEmpty() {
		js.References = append(js.References, jsonReference{RefType: "CHILD_OF", TraceID: traceID, SpanID: spanIDString(p)})
	}
	for _, l := range span.Links().All() {
		js.References = append(js.References, jsonReference{
			RefType: "FOLLOWS_FROM",
			TraceID: traceIDString(l.TraceID()),
			SpanID:  spanIDString(l.SpanID()),
		})
	}

	js.Tags = append(js.Tags, scopeTags...)
	for k, v := range span.Attributes().All() {
		js.Tags = append(js.Tags, attributeTag(k, v))
	}
	if kind := spanKind(span.Kind()); kind != "" {
		js.Tags = append(js.Tags, stringTag(tagSpanKind, kind))
	}
	status := span.Status()
	switch status.Code() {
	case ptrace.StatusCodeOk:
		js.Tags = append(js.Tags, stringTag(tagStatusCode, "OK"))
	case ptrace.StatusCodeError:
		js.Tags = append(js.Tags, stringTag(tagStatusCode, "ERROR"), keyValue{Key: tagError, Type: typeBool, Value: true})
	}
	if msg := status.Message(); msg != "" {
		js.Tags = append(js.Tags, stringTag(tagStatusDescription, msg))
	}
	if ts := span.TraceState().AsRaw(); ts != "" {
		js.Tags = append(js.Tags, stringTag(tagTraceState, ts))
	}

	for _, ev := range span.Events().All() {
		l := jsonLog{Timestamp: micros(ev.Timestamp()), Fields: make([]keyValue, 0, ev.Attributes().Len()+1)}
		// An "event" attribute written by the instrumentation wins over the
		// name, so a field never appears twice.
		if _, has := ev.Attributes().Get(fieldEvent); ev.Name() != "" && !has {
			l.Fields = append(l.Fields, stringTag(fieldEvent, ev.Name()))
		}
		for k, v := range ev.Attributes().All() {
			l.Fields = append(l.Fields, attributeTag(k, v))
		}
		js.Logs = append(js.Logs, l)
	}
	return js
}

// spanKind returns the OpenTracing span.kind value; internal and
// unspecified spans get no tag, as in Jaeger's own mapping.
func spanKind(k ptrace.SpanKind) string {
	switch k {
	case ptrace.SpanKindClient:
		return "client"
	case ptrace.SpanKindServer:
		return "server"
	case ptrace.SpanKindProducer:
		return "producer"
	case ptrace.SpanKindConsumer:
		return "consumer"
	}
	return ""
}

// attributeTag maps an OTLP attribute to a typed Jaeger tag. Jaeger has no
// array or map type, so those become their JSON text; binary values are
// encoded by encoding/json as base64, which is what Jaeger's JSON does too.
func attributeTag(key string, v pcommon.Value) keyValue {
	switch v.Type() {
	case pcommon.ValueTypeBool:
		return keyValue{Key: key, Type: typeBool, Value: v.Bool()}
	case pcommon.ValueTypeInt:
		return keyValue{Key: key, Type: typeInt64, Value: v.Int()}
	case pcommon.ValueTypeDouble:
		f := v.Double()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			// JSON has no NaN or infinity; a string keeps the value visible.
			return stringTag(key, strconv.FormatFloat(f, 'g', -1, 64))
		}
		return keyValue{Key: key, Type: typeFloat64, Value: f}
	case pcommon.ValueTypeBytes:
		return keyValue{Key: key, Type: typeBinary, Value: v.Bytes().AsRaw()}
	default: // string, empty, slice, map
		return stringTag(key, v.AsString())
	}
}

func stringTag(key, value string) keyValue {
	return keyValue{Key: key, Type: typeString, Value: value}
}

func micros(ts pcommon.Timestamp) uint64 { return uint64(ts) / 1000 }

func traceIDString(id pcommon.TraceID) string { return hex.EncodeToString(id[:]) }

func spanIDString(id pcommon.SpanID) string { return hex.EncodeToString(id[:]) }
