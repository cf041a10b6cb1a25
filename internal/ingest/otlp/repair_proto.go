package otlp

import (
	"slices"

	colllogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	collmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	colltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/vigil-observability/vigil/internal/ingest/limits"
)

// The repair functions decode protobuf with the generic OTLP types, which
// accept ids of any length (pdata insists on exactly 16 or 8 bytes, or
// none), drop what carries a malformed id and re-encode the rest for pdata.
// They only run after pdata refused a body, so speed matters little.

const (
	traceIDLen = 16
	spanIDLen  = 8
)

// validID reports whether id is absent or has the length pdata accepts.
// An absent (all-empty) id is left for the limits to judge.
func validID(id []byte, n int) bool { return len(id) == 0 || len(id) == n }

func repairTracesProto(body []byte) ([]byte, limits.Report, error) {
	r := limits.Report{Item: "spans"}
	var req colltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		return nil, r, err
	}
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			ss.Spans = slices.DeleteFunc(ss.Spans, func(sp *tracepb.Span) bool {
				switch {
				case sp == nil:
					return false
				case !validID(sp.TraceId, traceIDLen):
					r.Reject(limits.ReasonInvalidTraceID, 1)
					return true
				case !validID(sp.SpanId, spanIDLen), !validID(sp.ParentSpanId, spanIDLen):
					r.Reject(limits.ReasonInvalidSpanID, 1)
					return true
				}
				repairLinks(sp, &r)
				return false
			})
		}
	}
	out, err := proto.Marshal(&req)
	return out, r, err
}

// repairLinks drops the links of a kept span that point at malformed ids;
// the span itself is fine, so the loss is recorded as an alteration.
func repairLinks(sp *tracepb.Span, r *limits.Report) {
	before := len(sp.Links)
	sp.Links = slices.DeleteFunc(sp.Links, func(l *tracepb.Span_Link) bool {
		switch {
		case l == nil:
			return false
		case !validID(l.TraceId, traceIDLen):
			r.Alter(limits.ReasonInvalidTraceID, 1)
			return true
		case !validID(l.SpanId, spanIDLen):
			r.Alter(limits.ReasonInvalidSpanID, 1)
			return true
		}
		return false
	})
	sp.DroppedLinksCount += uint32(before - len(sp.Links))
}

func repairLogsProto(body []byte) ([]byte, limits.Report, error) {
	r := limits.Report{Item: "log records"}
	var req colllogspb.ExportLogsServiceRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		return nil, r, err
	}
	for _, rl := range req.GetResourceLogs() {
		for _, sl := range rl.GetScopeLogs() {
			sl.LogRecords = slices.DeleteFunc(sl.LogRecords, func(lr *logspb.LogRecord) bool {
				switch {
				case lr == nil:
					return false
				case !validID(lr.TraceId, traceIDLen):
					r.Reject(limits.ReasonInvalidTraceID, 1)
					return true
				case !validID(lr.SpanId, spanIDLen):
					r.Reject(limits.ReasonInvalidSpanID, 1)
					return true
				}
				return false
			})
		}
	}
	out, err := proto.Marshal(&req)
	return out, r, err
}

// repairMetricsProto drops exemplars with malformed ids; the data points
// they decorate are kept.
func repairMetricsProto(body []byte) ([]byte, limits.Report, error) {
	r := limits.Report{Item: "data points"}
	var req collmetricspb.ExportMetricsServiceRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		return nil, r, err
	}
	fix := func(ex []*metricspb.Exemplar) []*metricspb.Exemplar {
		return slices.DeleteFunc(ex, func(e *metricspb.Exemplar) bool {
			switch {
			case e == nil:
				return false
			case !validID(e.TraceId, traceIDLen):
				r.Alter(limits.ReasonInvalidTraceID, 1)
				return true
			case !validID(e.SpanId, spanIDLen):
				r.Alter(limits.ReasonInvalidSpanID, 1)
				return true
			}
			return false
		})
	}
	for _, rm := range req.GetResourceMetrics() {
		for _, sm := range rm.GetScopeMetrics() {
			for _, m := range sm.GetMetrics() {
				for _, dp := range m.GetGauge().GetDataPoints() {
					dp.Exemplars = fix(dp.Exemplars)
				}
				for _, dp := range m.GetSum().GetDataPoints() {
					dp.Exemplars = fix(dp.Exemplars)
				}
				for _, dp := range m.GetHistogram().GetDataPoints() {
					dp.Exemplars = fix(dp.Exemplars)
				}
				for _, dp := range m.GetExponentialHistogram().GetDataPoints() {
					dp.Exemplars = fix(dp.Exemplars)
				}
			}
		}
	}
	out, err := proto.Marshal(&req)
	return out, r, err
}
