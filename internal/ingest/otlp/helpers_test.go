package otlp

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	colllogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	collmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	colltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/vigil-observability/vigil/internal/ingest/limits"
	"github.com/vigil-observability/vigil/internal/selfobs"
)

// testNow is the receivers' clock in tests; fixtures are stamped around it
// (1748779200 seconds since the epoch).
var testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// recorder is a consumer that keeps what it is given, or fails with err.
type recorder struct {
	mu      sync.Mutex
	err     error
	traces  []ptrace.Traces
	logs    []plog.Logs
	metrics []pmetric.Metrics
}

func (r *recorder) ConsumeTraces(_ context.Context, td ptrace.Traces) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.traces = append(r.traces, td)
	return nil
}

func (r *recorder) ConsumeLogs(_ context.Context, ld plog.Logs) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.logs = append(r.logs, ld)
	return nil
}

func (r *recorder) ConsumeMetrics(_ context.Context, md pmetric.Metrics) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.metrics = append(r.metrics, md)
	return nil
}

// spanNames lists the names of every span consumed, sorted.
func (r *recorder) spanNames() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var names []string
	for _, td := range r.traces {
		for _, rs := range td.ResourceSpans().All() {
			for _, ss := range rs.ScopeSpans().All() {
				for _, sp := range ss.Spans().All() {
					names = append(names, sp.Name())
				}
			}
		}
	}
	slices.Sort(names)
	return names
}

// logBodies lists the string bodies of every log record consumed, sorted.
func (r *recorder) logBodies() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var bodies []string
	for _, ld := range r.logs {
		for _, rl := range ld.ResourceLogs().All() {
			for _, sl := range rl.ScopeLogs().All() {
				for _, lr := range sl.LogRecords().All() {
					bodies = append(bodies, lr.Body().AsString())
				}
			}
		}
	}
	slices.Sort(bodies)
	return bodies
}

func (r *recorder) dataPoints() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, md := range r.metrics {
		n += md.DataPointCount()
	}
	return n
}

func testOptions(rec *recorder) Options {
	return Options{
		Traces:  rec,
		Logs:    rec,
		Metrics: rec,
		Limits:  limits.Limits{MaxRequestBytes: 1 << 20},
		Ingest:  selfobs.NewIngestMetrics(nil),
		Now:     func() time.Time { return testNow },
	}
}

var (
	testTraceID = pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	testSpanID  = pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, 8}
)

// makeTraces builds one resource (service.name=checkout) with a span per name.
func makeTraces(names ...string) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "checkout")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("test")
	for i, name := range names {
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(testTraceID)
		id := testSpanID
		id[7] = byte(i + 1)
		sp.SetSpanID(id)
		sp.SetName(name)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(testNow.Add(-time.Second)))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(testNow))
		sp.Attributes().PutStr("http.method", "GET")
	}
	return td
}

func makeLogs(bodies ...string) plog.Logs {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "checkout")
	sl := rl.ScopeLogs().AppendEmpty()
	for _, b := range bodies {
		lr := sl.LogRecords().AppendEmpty()
		lr.SetTimestamp(pcommon.NewTimestampFromTime(testNow))
		lr.Body().SetStr(b)
		lr.SetTraceID(testTraceID)
		lr.SetSpanID(testSpanID)
	}
	return ld
}

func makeMetrics(points int) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "checkout")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("queue_depth")
	g := m.SetEmptyGauge()
	for i := range points {
		dp := g.DataPoints().AppendEmpty()
		dp.SetTimestamp(pcommon.NewTimestampFromTime(testNow))
		dp.SetIntValue(int64(i))
		dp.Attributes().PutInt("shard", int64(i))
	}
	return md
}

// must returns v, panicking on err: for building fixtures, which cannot fail.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func tracesBody(t testing.TB, td ptrace.Traces, enc wireEncoding) []byte {
	req := ptraceotlp.NewExportRequestFromTraces(td)
	if enc == encJSON {
		return must(req.MarshalJSON())
	}
	return must(req.MarshalProto())
}

func logsBody(t testing.TB, ld plog.Logs, enc wireEncoding) []byte {
	req := plogotlp.NewExportRequestFromLogs(ld)
	if enc == encJSON {
		return must(req.MarshalJSON())
	}
	return must(req.MarshalProto())
}

func metricsBody(t testing.TB, md pmetric.Metrics, enc wireEncoding) []byte {
	req := pmetricotlp.NewExportRequestFromMetrics(md)
	if enc == encJSON {
		return must(req.MarshalJSON())
	}
	return must(req.MarshalProto())
}

func gzipped(t testing.TB, data []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// gzipBomb compresses size zeros, streaming, keeping only the output.
func gzipBomb(t testing.TB, size int) []byte {
	var buf bytes.Buffer
	w := must(gzip.NewWriterLevel(&buf, gzip.BestSpeed))
	zeros := make([]byte, 1<<20)
	for n := 0; n < size; n += len(zeros) {
		if _, err := w.Write(zeros); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// badIDTracesProto encodes, with the generic OTLP types (pdata cannot
// produce it), a request of three spans where "bad-trace" has a 15-byte
// trace id, "bad-parent" a 7-byte parent span id, and "good" and "good2"
// are fine; "good2" also has a link with a malformed span id.
func badIDTracesProto(t testing.TB) []byte {
	ts := uint64(testNow.UnixNano())
	span := func(name string, traceID, spanID, parent []byte) *tracepb.Span {
		return &tracepb.Span{
			TraceId: traceID, SpanId: spanID, ParentSpanId: parent, Name: name,
			StartTimeUnixNano: ts - 1000, EndTimeUnixNano: ts,
			Attributes: []*commonpb.KeyValue{{Key: "k", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "v"}}}},
		}
	}
	good2 := span("good2", testTraceID[:], []byte{9, 9, 9, 9, 9, 9, 9, 9}, nil)
	good2.Links = []*tracepb.Span_Link{
		{TraceId: testTraceID[:], SpanId: []byte{1, 2, 3}},
		{TraceId: testTraceID[:], SpanId: testSpanID[:]},
	}
	req := &colltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{{Key: "service.name", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "checkout"}}}}},
		ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{
			span("good", testTraceID[:], testSpanID[:], nil),
			span("bad-trace", testTraceID[:15], testSpanID[:], nil),
			span("bad-parent", testTraceID[:], testSpanID[:], testSpanID[:7]),
			good2,
		}}},
	}}}
	return must(proto.Marshal(req))
}

// badIDLogsProto encodes two log records, "ok" and "bad" (9-byte span id).
func badIDLogsProto(t testing.TB) []byte {
	ts := uint64(testNow.UnixNano())
	body := func(s string) *commonpb.AnyValue {
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s}}
	}
	req := &colllogspb.ExportLogsServiceRequest{ResourceLogs: []*logspb.ResourceLogs{{
		ScopeLogs: []*logspb.ScopeLogs{{LogRecords: []*logspb.LogRecord{
			{TimeUnixNano: ts, Body: body("ok"), TraceId: testTraceID[:], SpanId: testSpanID[:]},
			{TimeUnixNano: ts, Body: body("bad"), TraceId: testTraceID[:], SpanId: append(testSpanID[:], 0)},
		}}},
	}}}
	return must(proto.Marshal(req))
}

func protoUnmarshal(b []byte, m proto.Message) error { return proto.Unmarshal(b, m) }

// badExemplarMetricsProto encodes a gauge with two data points, one of
// which carries an exemplar with a 3-byte trace id.
func badExemplarMetricsProto(t testing.TB) []byte {
	ts := uint64(testNow.UnixNano())
	req := &collmetricspb.ExportMetricsServiceRequest{ResourceMetrics: []*metricspb.ResourceMetrics{{
		ScopeMetrics: []*metricspb.ScopeMetrics{{Metrics: []*metricspb.Metric{{
			Name: "temperature",
			Data: &metricspb.Metric_Gauge{Gauge: &metricspb.Gauge{DataPoints: []*metricspb.NumberDataPoint{
				{TimeUnixNano: ts, Value: &metricspb.NumberDataPoint_AsDouble{AsDouble: 21.5}},
				{TimeUnixNano: ts, Value: &metricspb.NumberDataPoint_AsDouble{AsDouble: 22},
					Exemplars: []*metricspb.Exemplar{{TimeUnixNano: ts, TraceId: []byte{1, 2, 3}, SpanId: testSpanID[:]}}},
			}}},
		}}}},
	}}}
	return must(proto.Marshal(req))
}
