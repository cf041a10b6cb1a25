package elasticsearch

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/vigil-observability/vigil/internal/ingest/limits"
)

// IndexAttribute is the log attribute that keeps the index (or data
// stream) a document was written to.
const IndexAttribute = "elasticsearch.index"

// resourcePrefixes are the ECS field sets that describe where a document
// comes from rather than the event: they become resource attributes, so
// that one host's or one service's documents share a resource.
var resourcePrefixes = []string{"service.", "host.", "container.", "cloud.", "kubernetes.", "orchestrator.", "agent."}

// Field names, by ECS and by the common non-ECS spellings agents use, in
// the order they are tried. The syslog daemons' default templates name
// their own: rsyslog's omelasticsearch sends timereported, fromhost and
// priority (a severity name); syslog-ng's elasticsearch-http() sends its
// macros' names, MESSAGE, HOST, PROGRAM and PRIORITY (journald's PRIORITY
// is a number, which severityNumber reads too).
var (
	timestampFields = []string{"@timestamp", "timestamp", "time", "timereported"}
	messageFields   = []string{"message", "msg", "log", "event.original", "MESSAGE"}
	levelFields     = []string{"log.level", "level", "severity", "log.syslog.severity.name", "syslog.severity", "priority", "PRIORITY"}
	traceIDFields   = []string{"trace.id", "trace_id", "traceId", "traceID"}
	spanIDFields    = []string{"span.id", "span_id", "spanId", "spanID"}
	// serviceFields name the service when service.name is absent: syslog's
	// application name is what a syslog line has for it; on Kubernetes,
	// the app's label or else its container's name, as Fluent Bit's
	// kubernetes filter (labels, container_name) and Filebeat's
	// add_kubernetes_metadata (container.name) write them.
	serviceFields = []string{"service.name", "log.syslog.appname", "process.name", "syslog.appname", "programname", "appname", "PROGRAM",
		"kubernetes.labels.app.kubernetes.io/name", "kubernetes.labels.app", "kubernetes.container_name", "kubernetes.container.name"}
	// hostFields name the host when host.name is absent: syslog templates
	// and older Logstash pipelines write a plain "host" string; on
	// Kubernetes, the node's name is the host.
	hostFields = []string{"host.name", "host.hostname", "host", "hostname", "fromhost", "HOST", "kubernetes.host", "kubernetes.node.name"}
)

// Document is one bulk document mapped onto vigil's log model.
type Document struct {
	Timestamp  time.Time // zero: none given, the time it is received counts
	Body       string
	Severity   string
	TraceID    pcommon.TraceID
	SpanID     pcommon.SpanID
	Resource   map[string]any // flattened ECS fields of resourcePrefixes
	Attributes map[string]any // every other field, flattened
	// ServiceField is the field service.name was taken from when the
	// document has none (a syslog application name), else "".
	ServiceField string
}

// MapDocument maps one document's JSON by its ECS fields: @timestamp,
// message, log.level, trace.id, span.id, service.*, host.* and the other
// resource field sets; every other field is kept, flattened to dotted
// names as Elasticsearch shows them. A field written either nested
// ({"log": {"level": "info"}}) or dotted ({"log.level": "info"}) is found
// both ways. The error is the item's, as Elasticsearch's
// mapper_parsing_exception.
func MapDocument(src json.RawMessage) (Document, *ItemError) {
	dec := json.NewDecoder(bytes.NewReader(src))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil || doc == nil {
		reason := "the document is not a JSON object"
		if err != nil {
			reason = "failed to parse: " + err.Error()
		}
		return Document{}, &ItemError{Status: 400, Type: "mapper_parsing_exception", Reason: reason, Rejection: limits.ReasonUndecodable}
	}
	flat := make(map[string]any, len(doc))
	flatten("", doc, flat)

	d := Document{Resource: map[string]any{}, Attributes: map[string]any{}}
	if k, v, ok := take(flat, timestampFields); ok {
		t, err := parseTime(v)
		if err != nil {
			return Document{}, &ItemError{Status: 400, Type: "mapper_parsing_exception",
				Reason: fmt.Sprintf("failed to parse field [%s] of type [date]: %v", k, err), Rejection: limits.ReasonUndecodable}
		}
		d.Timestamp = t
	}
	if k, v, ok := take(flat, levelFields); ok {
		if (k == "priority" || k == "PRIORITY") && severityNumber(text(v)) == plog.SeverityNumberUnspecified {
			flat[k] = v // a priority that is no syslog severity ("high"): the event's own field
		} else {
			d.Severity = text(v)
		}
	}
	if k, v, ok := take(flat, traceIDFields); ok {
		if id, ok := hexID(text(v), 16); ok {
			d.TraceID = pcommon.TraceID(id)
		} else {
			flat[k] = v // not an id vigil can link: keep it as it came
		}
	}
	if k, v, ok := take(flat, spanIDFields); ok {
		if id, ok := hexID(text(v), 8); ok {
			d.SpanID = pcommon.SpanID(id[:8])
		} else {
			flat[k] = v
		}
	}
	if k, v, ok := take(flat, messageFields); ok {
		if s, isString := v.(string); isString {
			d.Body = s
		} else {
			flat[k] = v
		}
	}
	d.ServiceField = fallback(flat, d.Resource, serviceFields)
	fallback(flat, d.Resource, hostFields)
	for k, v := range flat {
		if hasResourcePrefix(k) {
			d.Resource[k] = v
		} else {
			d.Attributes[k] = v
		}
	}
	if d.Body == "" && len(d.Attributes) > 0 && !anyMessage(flat) {
		// No message field: the document itself is the event, as
		// Elasticsearch would show it.
		d.Body = string(bytes.TrimSpace(src))
	}
	return d, nil
}

// fallback sets fields[0] in resource from the first of the other fields
// that holds a non-empty string, when the document lacks fields[0], and
// returns the field used. The field itself stays in the document.
func fallback(flat, resource map[string]any, fields []string) string {
	if _, ok := flat[fields[0]]; ok {
		return ""
	}
	for _, f := range fields[1:] {
		if v, ok := flat[f].(string); ok && v != "" {
			resource[fields[0]] = v
			return f
		}
	}
	return ""
}

func anyMessage(flat map[string]any) bool {
	for _, f := range messageFields {
		if _, ok := flat[f]; ok {
			return true
		}
	}
	return false
}

func hasResourcePrefix(k string) bool {
	for _, p := range resourcePrefixes {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

// take removes and returns the first of fields present in flat.
func take(flat map[string]any, fields []string) (string, any, bool) {
	for _, f := range fields {
		if v, ok := flat[f]; ok {
			delete(flat, f)
			return f, v, true
		}
	}
	return "", nil, false
}

// flatten writes v's leaves into out under dotted names. Arrays are
// leaves: Elasticsearch keeps them as one multi-valued field.
func flatten(prefix string, v map[string]any, out map[string]any) {
	for k, x := range v {
		name := k
		if prefix != "" {
			name = prefix + "." + k
		}
		if m, ok := x.(map[string]any); ok && len(m) > 0 {
			flatten(name, m, out)
			continue
		}
		out[name] = x
	}
}

// text is a field's value as text.
func text(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case nil:
		return ""
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

// hexID decodes a hex id of n bytes; an id of 8 bytes where 16 are wanted
// is accepted right-aligned, as the 64-bit trace ids of older tracers.
func hexID(s string, n int) ([16]byte, bool) {
	var id [16]byte
	b, err := hex.DecodeString(s)
	if err != nil || (len(b) != n && !(n == 16 && len(b) == 8)) {
		return id, false
	}
	copy(id[n-len(b):], b)
	if id == ([16]byte{}) {
		return id, false
	}
	return id, true
}

// dateLayouts are the string forms of Elasticsearch's default date
// format (strict_date_optional_time) agents send, and syslog's.
var dateLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02",
}

// parseTime reads a date as Elasticsearch's default mapping does: a
// string in one of its formats (UTC when it has no zone) or a number of
// milliseconds since the epoch (as a number or a string of digits).
func parseTime(v any) (time.Time, error) {
	switch x := v.(type) {
	case json.Number:
		return epochMillis(x.String())
	case string:
		if x != "" && strings.Trim(x, "0123456789.") == "" {
			return epochMillis(x)
		}
		for _, l := range dateLayouts {
			if t, err := time.Parse(l, x); err == nil {
				return t, nil
			}
		}
		return time.Time{}, fmt.Errorf("%q is not a date in a format vigil knows (RFC 3339, or milliseconds since the epoch)", x)
	default:
		return time.Time{}, fmt.Errorf("a %T is not a date", v)
	}
}

func epochMillis(s string) (time.Time, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) || math.Abs(f) > 1e15 {
		return time.Time{}, fmt.Errorf("%q is not milliseconds since the epoch", s)
	}
	return time.UnixMicro(int64(f * 1000)).UTC(), nil
}

// severityNumber maps level names, as loggers and syslog spell them, to
// OpenTelemetry's severity numbers.
func severityNumber(level string) plog.SeverityNumber {
	switch strings.ToLower(strings.TrimSpace(level)) {
	case "trace", "finest", "finer":
		return plog.SeverityNumberTrace
	case "debug", "fine", "dbg", "7":
		return plog.SeverityNumberDebug
	case "info", "information", "informational", "notice", "inf", "6", "5":
		return plog.SeverityNumberInfo
	case "warn", "warning", "wrn", "4":
		return plog.SeverityNumberWarn
	case "error", "err", "eror", "3":
		return plog.SeverityNumberError
	case "fatal", "critical", "crit", "alert", "emerg", "emergency", "panic", "2", "1", "0":
		return plog.SeverityNumberFatal
	}
	return plog.SeverityNumberUnspecified
}

// resourceKey identifies a resource by its attributes, so that documents
// from one source share one ResourceLogs.
func resourceKey(attrs map[string]any) string {
	var b strings.Builder
	for _, k := range sortedKeys(attrs) {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(text(attrs[k]))
		b.WriteByte(0)
	}
	return b.String()
}

// putValue sets v, a decoded JSON value, into dst.
func putValue(dst pcommon.Value, v any) {
	switch x := v.(type) {
	case string:
		dst.SetStr(x)
	case bool:
		dst.SetBool(x)
	case json.Number:
		if i, err := x.Int64(); err == nil {
			dst.SetInt(i)
		} else if f, err := x.Float64(); err == nil {
			dst.SetDouble(f)
		} else {
			dst.SetStr(x.String())
		}
	case []any:
		s := dst.SetEmptySlice()
		s.EnsureCapacity(len(x))
		for _, e := range x {
			putValue(s.AppendEmpty(), e)
		}
	case map[string]any:
		putAll(dst.SetEmptyMap(), x)
	case nil:
		// An empty value: Elasticsearch keeps a null as "no value".
	default:
		dst.SetStr(text(x))
	}
}

// putAll sets attrs into dst in the order of their names, so that a
// document always maps to the same record.
func putAll(dst pcommon.Map, attrs map[string]any) {
	dst.EnsureCapacity(len(attrs))
	for _, k := range sortedKeys(attrs) {
		putValue(dst.PutEmpty(k), attrs[k])
	}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ToLogs builds the OTLP logs of the accepted items: their documents,
// grouped into one ResourceLogs per source. mapped[i] is items[i]'s
// document; items with an error are left out. now is the observed time of
// every record.
func ToLogs(items []Item, mapped []Document, now time.Time) plog.Logs {
	ld := plog.NewLogs()
	byResource := map[string]plog.LogRecordSlice{}
	observed := pcommon.NewTimestampFromTime(now)
	for i, it := range items {
		if it.Err != nil {
			continue
		}
		d := mapped[i]
		key := resourceKey(d.Resource)
		recs, ok := byResource[key]
		if !ok {
			rl := ld.ResourceLogs().AppendEmpty()
			putAll(rl.Resource().Attributes(), d.Resource)
			sl := rl.ScopeLogs().AppendEmpty()
			sl.Scope().SetName("elasticsearch-bulk")
			recs = sl.LogRecords()
			byResource[key] = recs
		}
		lr := recs.AppendEmpty()
		if !d.Timestamp.IsZero() {
			lr.SetTimestamp(pcommon.NewTimestampFromTime(d.Timestamp))
		}
		lr.SetObservedTimestamp(observed)
		lr.Body().SetStr(d.Body)
		if d.Severity != "" {
			lr.SetSeverityText(d.Severity)
			lr.SetSeverityNumber(severityNumber(d.Severity))
		}
		lr.SetTraceID(d.TraceID)
		lr.SetSpanID(d.SpanID)
		putAll(lr.Attributes(), d.Attributes)
		lr.Attributes().PutStr(IndexAttribute, it.Index)
	}
	return ld
}
