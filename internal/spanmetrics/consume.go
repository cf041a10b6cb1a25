package spanmetrics

import (
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"

	vstorage "github.com/vigil-observability/vigil/internal/storage"
)

// UnknownService is the service_name of spans and log records whose
// resource has no service.name, as in OpenTelemetry SDKs.
const UnknownService = "unknown_service"

// Label values of span_kind, indexed by ptrace.SpanKind.
var spanKinds = [...]string{
	ptrace.SpanKindUnspecified: "SPAN_KIND_UNSPECIFIED",
	ptrace.SpanKindInternal:    "SPAN_KIND_INTERNAL",
	ptrace.SpanKindServer:      "SPAN_KIND_SERVER",
	ptrace.SpanKindClient:      "SPAN_KIND_CLIENT",
	ptrace.SpanKindProducer:    "SPAN_KIND_PRODUCER",
	ptrace.SpanKindConsumer:    "SPAN_KIND_CONSUMER",
}

// Label values of status_code, indexed by ptrace.StatusCode.
var statusCodes = [...]string{
	ptrace.StatusCodeUnset: "STATUS_CODE_UNSET",
	ptrace.StatusCodeOk:    "STATUS_CODE_OK",
	ptrace.StatusCodeError: "STATUS_CODE_ERROR",
}

type spanKey struct {
	service, name string
	kind          ptrace.SpanKind
	status        ptrace.StatusCode
}

func validSpanKey(k spanKey) spanKey {
	k.service, k.name = validString(k.service), validString(k.name)
	return k
}

func ownSpanKey(k spanKey) spanKey {
	k.service, k.name = strings.Clone(k.service), strings.Clone(k.name)
	return k
}

func overflowSpanKeys(k spanKey) (spanKey, spanKey) {
	k.name = Overflow
	o := k
	o.service = Overflow
	return k, o
}

type logKey struct {
	service  string
	severity vstorage.Severity
}

func validLogKey(k logKey) logKey {
	k.service = validString(k.service)
	return k
}

func ownLogKey(k logKey) logKey {
	k.service = strings.Clone(k.service)
	return k
}

func overflowLogKeys(k logKey) (logKey, logKey) {
	k.service = Overflow
	return k, k
}

// RecordSpans counts td's spans and pairs client and server spans into
// service graph edges. Call it once the spans are stored; it does not keep
// td.
func (r *Recorder) RecordSpans(td ptrace.Traces) {
	rss := td.ResourceSpans()
	if rss.Len() == 0 {
		return
	}
	now := r.now().UnixNano()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expirePending(now)
	for i := range rss.Len() {
		rs := rss.At(i)
		service := r.intern(serviceName(rs.Resource()))
		r.seeVersion(service, rs.Resource())
		sss := rs.ScopeSpans()
		for j := range sss.Len() {
			spans := sss.At(j).Spans()
			for k := range spans.Len() {
				r.observeSpan(service, spans.At(k), now)
			}
		}
	}
}

// observeSpan records one span of an interned service; r.mu is held.
func (r *Recorder) observeSpan(service string, sp ptrace.Span, now int64) {
	kind := sp.Kind()
	if uint(kind) >= uint(len(spanKinds)) {
		kind = ptrace.SpanKindUnspecified
	}
	status := sp.Status().Code()
	if uint(status) >= uint(len(statusCodes)) {
		status = ptrace.StatusCodeUnset
	}
	var dur int64
	if start, end := sp.StartTimestamp(), sp.EndTimestamp(); end > start {
		dur = int64(end - start)
	}
	s := r.spans.get(spanKey{service: service, name: sp.Name(), kind: kind, status: status}, r.maxSeries, r.startMs)
	s.v.observe(dur)

	switch kind {
	case ptrace.SpanKindClient, ptrace.SpanKindProducer:
		h := half{service: service, durNs: dur, failed: status == ptrace.StatusCodeError, set: true}
		if kind == ptrace.SpanKindClient {
			// A database is not instrumented: its client span is the
			// whole edge, as in the servicegraph connector.
			if db := databaseName(sp.Attributes()); db != "" {
				r.countEdge(edgeKey{client: h.service, server: db, conn: connDatabase}, h, h)
				return
			}
		}
		r.observeHalf(halfKey{trace: sp.TraceID(), span: sp.SpanID()}, false, h, kind == ptrace.SpanKindProducer, now)
	case ptrace.SpanKindServer, ptrace.SpanKindConsumer:
		parent := sp.ParentSpanID()
		if parent.IsEmpty() {
			return // a root span: nobody reported calling it
		}
		h := half{service: service, durNs: dur, failed: status == ptrace.StatusCodeError, set: true}
		r.observeHalf(halfKey{trace: sp.TraceID(), span: parent}, true, h, kind == ptrace.SpanKindConsumer, now)
	}
}

// RecordLogs counts ld's log records by service and severity. Call it once
// the records are stored; it does not keep ld.
func (r *Recorder) RecordLogs(ld plog.Logs) {
	rls := ld.ResourceLogs()
	if rls.Len() == 0 {
		return
	}
	r.logMu.Lock()
	defer r.logMu.Unlock()
	for i := range rls.Len() {
		rl := rls.At(i)
		service := serviceName(rl.Resource())
		sls := rl.ScopeLogs()
		for j := range sls.Len() {
			records := sls.At(j).LogRecords()
			for k := range records.Len() {
				sev := vstorage.SeverityOf(records.At(k).SeverityNumber())
				r.logs.get(logKey{service: service, severity: sev}, r.maxSeries, r.startMs).v++
			}
		}
	}
}

// intern returns a valid UTF-8 copy of a service name that pending halves
// may keep, shared by every span of the service; r.mu is held.
func (r *Recorder) intern(service string) string {
	if s, ok := r.services[service]; ok {
		return s
	}
	s := strings.Clone(validString(service))
	if len(r.services) < maxInterned {
		key := s
		if s != service { // invalid UTF-8, replaced
			key = strings.Clone(service)
		}
		r.services[key] = s
	}
	return s
}

// maxInterned bounds the interned service names; beyond it, each batch's
// service names are copied.
const maxInterned = 10_000

// serviceName is the resource's service.name, or UnknownService.
func serviceName(res pcommon.Resource) string {
	v, ok := res.Attributes().Get("service.name")
	if !ok {
		return UnknownService
	}
	var s string
	if v.Type() == pcommon.ValueTypeStr {
		s = v.Str()
	} else {
		s = v.AsString()
	}
	if s == "" {
		return UnknownService
	}
	return s
}

// databaseName names the database a client span calls, from the semantic
// conventions' db.* attributes (current and older names), or "" when the
// span is not a database call.
func databaseName(attrs pcommon.Map) string {
	var namespace, name, system string
	for k, v := range attrs.All() {
		if len(k) < 7 || k[:3] != "db." || v.Type() != pcommon.ValueTypeStr {
			continue
		}
		switch k {
		case "db.namespace":
			namespace = v.Str()
		case "db.name":
			name = v.Str()
		case "db.system.name", "db.system":
			system = v.Str()
		}
	}
	switch {
	case namespace != "":
		return namespace
	case name != "":
		return name
	}
	return system
}

// versionKey is a service's instance and version, as its spans' resource
// says.
type versionKey struct{ service, instance, version string }

// versionSeries is one traces_service_build_info series.
type versionSeries struct {
	key  versionKey
	seen bool // spans arrived since the last flush; guarded by Recorder.mu
	out  flushState
}

// seeVersion marks the resource's service.version (with its
// service.instance.id) as seen; a resource without one is not counted.
// At most maxSeries label sets are kept; later ones are not recorded.
// r.mu is held.
func (r *Recorder) seeVersion(service string, res pcommon.Resource) {
	v, ok := res.Attributes().Get("service.version")
	if !ok || v.Str() == "" {
		return
	}
	k := versionKey{service: service, version: v.Str()}
	if id, ok := res.Attributes().Get("service.instance.id"); ok {
		k.instance = id.Str()
	}
	s := r.versions[k]
	if s == nil {
		k.instance, k.version = validString(k.instance), validString(k.version)
		if s = r.versions[k]; s == nil {
			if len(r.versions) >= r.maxSeries {
				return
			}
			k.instance, k.version = strings.Clone(k.instance), strings.Clone(k.version)
			s = &versionSeries{key: k}
			r.versions[k] = s
		}
	}
	s.seen = true
}

// takeVersions returns the version series seen since the last call, and
// forgets that they were. r.mu is held.
func (r *Recorder) takeVersions() []*versionSeries {
	var out []*versionSeries
	for _, s := range r.versions {
		if s.seen {
			s.seen = false
			out = append(out, s)
		}
	}
	return out
}
