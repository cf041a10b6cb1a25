package lokipush

import (
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/vigil-observability/vigil/internal/storage"
)

// ScopeName is the instrumentation scope of the records Logs makes, so that
// a reader can tell logs that came through the Loki API from OTLP ones.
const ScopeName = "loki.push"

// resourceKeys maps the stream labels that have an OpenTelemetry
// semantic-convention twin to that twin. They are the labels Loki itself
// makes from those resource attributes when it takes OTLP logs (dots
// become underscores), so a stream that went OTLP → Loki label → vigil
// gets its attribute back. Other labels keep their own name (job, app,
// namespace, pod, container, filename...), as inventing semantics for
// them would be a guess. A label whose twin the Loki query API would name
// otherwise (host is host.name, read back as host_name) is kept under its
// own name as well.
var resourceKeys = map[string]string{
	"service_name":           "service.name",
	"service_namespace":      "service.namespace",
	"service_instance_id":    "service.instance.id",
	"service_version":        "service.version",
	"deployment_environment": "deployment.environment.name",
	"host":                   "host.name",
	"hostname":               "host.name",
	"host_name":              "host.name",
	"k8s_namespace_name":     "k8s.namespace.name",
	"k8s_pod_name":           "k8s.pod.name",
	"k8s_container_name":     "k8s.container.name",
}

// serviceFallbacks are the labels that name the service when a stream has
// no service_name, in order of preference: the ones Loki's own service
// name discovery looks at that agents commonly set. The label is kept
// under its own name as well.
var serviceFallbacks = []string{"service", "app", "application", "job", "container"}

// levelKeys carry a severity, in stream labels or structured metadata.
var levelKeys = []string{"level", "detected_level", "severity", "lvl"}

// traceKeys and spanKeys are the spellings of the trace and span id that
// loggers and agents use.
var (
	traceKeys = []string{"trace_id", "traceID", "traceid", "traceId", "TraceID", "trace.id"}
	spanKeys  = []string{"span_id", "spanID", "spanid", "spanId", "SpanID", "span.id"}
)

// Logs converts the kept streams to OTLP logs, the form vigil's log writer
// takes, one resource per stream:
//
//   - stream labels become resource attributes, renamed per the table
//     above; service.name comes from service_name or else from the first
//     of service, app, application, job, container;
//   - structured metadata becomes record attributes;
//   - the line is the record body, the entry time its timestamp, now its
//     observed timestamp;
//   - a level, detected_level, severity or lvl in metadata or labels, or
//     else in the line (a top-level JSON field, pino's numbers included,
//     or a logfmt key) when vigil knows it as a level, sets the severity
//     text and number (the lowest of its band);
//   - a trace id is lifted from metadata (where the attribute is then
//     dropped, being the record's trace id), from labels, or from the line
//     (a top-level JSON field, or a logfmt key), tried in that order. It
//     must be 32 hex digits, or 16 (a 64-bit id, zero-padded on the left as
//     W3C does); span ids must be 16. Anything else stays as it was.
func (r *Result) Logs(now time.Time) plog.Logs {
	ld := plog.NewLogs()
	obs := pcommon.NewTimestampFromTime(now)
	for _, s := range r.Streams {
		rl := ld.ResourceLogs().AppendEmpty()
		attrs := rl.Resource().Attributes()
		attrs.EnsureCapacity(len(s.Labels) + 1)
		hasService := false
		for _, l := range s.Labels {
			key := l.Name
			if k, ok := resourceKeys[key]; ok {
				key = k
			}
			hasService = hasService || key == "service.name"
			attrs.PutStr(key, l.Value)
			if key != l.Name && strings.ReplaceAll(key, ".", "_") != l.Name {
				// host is host.name to vigil, but the Loki API names that
				// host_name: keep the label as sent too, so that the
				// selectors of existing dashboards ({host="h1"}) still
				// find the stream.
				attrs.PutStr(l.Name, l.Value)
			}
		}
		if !hasService {
			for _, k := range serviceFallbacks {
				if v, ok := lookup(s.Labels, k); ok {
					attrs.PutStr("service.name", v)
					break
				}
			}
		}
		streamLevel, _ := lookupAny(s.Labels, levelKeys)
		streamTrace, _ := lookupAny(s.Labels, traceKeys)
		streamSpan, _ := lookupAny(s.Labels, spanKeys)

		sl := rl.ScopeLogs().AppendEmpty()
		sl.Scope().SetName(ScopeName)
		recs := sl.LogRecords()
		recs.EnsureCapacity(len(s.Entries))
		for _, e := range s.Entries {
			lr := recs.AppendEmpty()
			lr.SetTimestamp(pcommon.NewTimestampFromTime(e.Time))
			lr.SetObservedTimestamp(obs)
			lr.Body().SetStr(e.Line)

			var traceSet, spanSet bool
			ra := lr.Attributes()
			ra.EnsureCapacity(len(e.Metadata))
			level := streamLevel
			for _, m := range e.Metadata {
				switch {
				case !traceSet && contains(traceKeys, m.Name):
					if id, ok := parseTraceID(m.Value); ok {
						lr.SetTraceID(id)
						traceSet = true
						continue
					}
				case !spanSet && contains(spanKeys, m.Name):
					if id, ok := parseSpanID(m.Value); ok {
						lr.SetSpanID(id)
						spanSet = true
						continue
					}
				case contains(levelKeys, m.Name):
					level = m.Value
				}
				ra.PutStr(m.Name, m.Value)
			}
			if !traceSet {
				traceSet = setTrace(lr, streamTrace)
			}
			if !spanSet {
				spanSet = setSpan(lr, streamSpan)
			}
			if !traceSet || !spanSet || level == "" {
				if l := liftFromLine(lr, e.Line, !traceSet, !spanSet, level == ""); l != "" {
					level = l
				}
			}
			if level != "" {
				lr.SetSeverityText(level)
				if sev, ok := storage.ParseSeverity(level); ok {
					lo, _ := sev.Range()
					lr.SetSeverityNumber(lo)
				}
			}
		}
	}
	return ld
}

// UnknownService names the service of a stream without any of the labels
// that name one, as OpenTelemetry's unknown_service does.
const UnknownService = "unknown_service"

// Service names the stream's service as Logs does for service.name: from
// service_name, else the first of service, app, application, job and
// container, else UnknownService.
func (s *Stream) Service() string {
	if v, ok := lookup(s.Labels, "service_name"); ok {
		return v
	}
	if v, ok := lookupAny(s.Labels, serviceFallbacks); ok {
		return v
	}
	return UnknownService
}

// labelPairs yields the stream's labels, in order, as name and value.
func (s *Stream) labelPairs(yield func(string, string) bool) {
	for _, l := range s.Labels {
		if !yield(l.Name, l.Value) {
			return
		}
	}
}

func setTrace(lr plog.LogRecord, v string) bool {
	if id, ok := parseTraceID(v); ok {
		lr.SetTraceID(id)
		return true
	}
	return false
}

func setSpan(lr plog.LogRecord, v string) bool {
	if id, ok := parseSpanID(v); ok {
		lr.SetSpanID(id)
		return true
	}
	return false
}

// liftFromLine looks for a trace or span id in the line itself, and for
// a level, which it returns: Grafana's log volume groups lines by the
// level Loki detects in them, and most shippers send it only in the line.
// The substring tests first keep a line that has none of them from being
// parsed at all.
func liftFromLine(lr plog.LogRecord, line string, trace, span, level bool) string {
	lower := strings.ToLower(line)
	trace = trace && strings.Contains(lower, "trace")
	span = span && strings.Contains(lower, "span")
	level = level && (strings.Contains(lower, "level") || strings.Contains(lower, "severity") || strings.Contains(lower, "lvl"))
	if !trace && !span && !level {
		return ""
	}
	fields := lineFields(line)
	if trace {
		if v, ok := lookupAny(fields, traceKeys); ok {
			setTrace(lr, v)
		}
	}
	if span {
		if v, ok := lookupAny(fields, spanKeys); ok {
			setSpan(lr, v)
		}
	}
	if level {
		if v, ok := lookupAny(fields, levelKeys); ok {
			if _, known := storage.ParseSeverity(v); known {
				return v
			}
		}
	}
	return ""
}

// pinoLevels are the numbers pino and bunyan write as a JSON line's level.
var pinoLevels = map[string]string{"10": "trace", "20": "debug", "30": "info", "40": "warn", "50": "error", "60": "fatal"}

// lineFields returns the top-level string fields of a JSON object line, or
// else the key=value pairs of a logfmt line.
func lineFields(line string) []Label {
	t := strings.TrimSpace(line)
	if strings.HasPrefix(t, "{") {
		var obj map[string]json.RawMessage
		if json.Unmarshal([]byte(t), &obj) != nil {
			return nil
		}
		var out []Label
		for k, raw := range obj {
			var s string
			if json.Unmarshal(raw, &s) == nil {
				out = append(out, Label{Name: k, Value: s})
			} else if name, ok := pinoLevels[string(raw)]; ok && contains(levelKeys, k) {
				out = append(out, Label{Name: k, Value: name})
			}
		}
		return out
	}
	return logfmtFields(line)
}

// logfmtFields reads key=value and key="quoted value" pairs, skipping what
// is not one: enough to find an id, not a full logfmt parser.
func logfmtFields(line string) []Label {
	var out []Label
	for len(line) > 0 {
		line = strings.TrimLeft(line, " \t")
		end := strings.IndexAny(line, "= \t")
		if end <= 0 || line[end] != '=' {
			if i := strings.IndexAny(line, " \t"); i >= 0 {
				line = line[i:]
				continue
			}
			return out
		}
		key := line[:end]
		line = line[end+1:]
		var val string
		if strings.HasPrefix(line, `"`) {
			i := 1
			for i < len(line) && line[i] != '"' {
				if line[i] == '\\' {
					i++
				}
				i++
			}
			val = line[1:min(i, len(line))]
			line = line[min(i+1, len(line)):]
		} else {
			i := strings.IndexAny(line, " \t")
			if i < 0 {
				i = len(line)
			}
			val, line = line[:i], line[i:]
		}
		out = append(out, Label{Name: key, Value: val})
	}
	return out
}

func parseTraceID(s string) (pcommon.TraceID, bool) {
	var id pcommon.TraceID
	switch len(s) {
	case 32:
		if _, err := hex.Decode(id[:], []byte(s)); err != nil {
			return pcommon.TraceID{}, false
		}
	case 16:
		if _, err := hex.Decode(id[8:], []byte(s)); err != nil {
			return pcommon.TraceID{}, false
		}
	default:
		return id, false
	}
	return id, !id.IsEmpty()
}

func parseSpanID(s string) (pcommon.SpanID, bool) {
	var id pcommon.SpanID
	if len(s) != 16 {
		return id, false
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return pcommon.SpanID{}, false
	}
	return id, !id.IsEmpty()
}

func lookup(ls []Label, name string) (string, bool) {
	for _, l := range ls {
		if l.Name == name {
			return l.Value, true
		}
	}
	return "", false
}

func lookupAny(ls []Label, names []string) (string, bool) {
	for _, n := range names {
		if v, ok := lookup(ls, n); ok {
			return v, true
		}
	}
	return "", false
}

func contains(names []string, s string) bool {
	for _, n := range names {
		if n == s {
			return true
		}
	}
	return false
}
