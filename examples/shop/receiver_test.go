package shop

import (
	"context"
	"encoding/hex"
	"net"
	"sync"
	"testing"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
)

// receiver is an in-process OTLP/gRPC endpoint that keeps what it is sent.
type receiver struct {
	coltracepb.UnimplementedTraceServiceServer

	addr string
	mu   sync.Mutex
	sp   []span
	logs []logRecord
}

// span is a received span with the service.name of its resource.
type span struct {
	service string
	*tracepb.Span
}

func (s span) traceID() string  { return hex.EncodeToString(s.TraceId) }
func (s span) spanID() string   { return hex.EncodeToString(s.SpanId) }
func (s span) parentID() string { return hex.EncodeToString(s.ParentSpanId) }

// logRecord is a received log record with its resource's service.name.
type logRecord struct {
	service string
	*logspb.LogRecord
}

func (l logRecord) traceID() string { return hex.EncodeToString(l.TraceId) }

func (l logRecord) attr(key string) string {
	return attrString(l.Attributes, key)
}

func attrString(kvs []*commonpb.KeyValue, key string) string {
	for _, kv := range kvs {
		if kv.Key == key {
			return kv.GetValue().GetStringValue()
		}
	}
	return ""
}

func serviceName(r *resourcepb.Resource) string {
	return attrString(r.GetAttributes(), "service.name")
}

func startReceiver(t *testing.T) *receiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{addr: ln.Addr().String()}
	gs := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(gs, r)
	collogspb.RegisterLogsServiceServer(gs, logsService{r: r})
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)
	return r
}

// Export implements the OTLP trace service.
func (r *receiver) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		svc := serviceName(rs.Resource)
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				r.sp = append(r.sp, span{service: svc, Span: s})
			}
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// logsService adapts the receiver to the logs service, whose Export has
// the same name as the trace service's.
type logsService struct {
	collogspb.UnimplementedLogsServiceServer
	r *receiver
}

func (l logsService) Export(_ context.Context, req *collogspb.ExportLogsServiceRequest) (*collogspb.ExportLogsServiceResponse, error) {
	l.r.mu.Lock()
	defer l.r.mu.Unlock()
	for _, rl := range req.ResourceLogs {
		svc := serviceName(rl.Resource)
		for _, sl := range rl.ScopeLogs {
			for _, lr := range sl.LogRecords {
				l.r.logs = append(l.r.logs, logRecord{service: svc, LogRecord: lr})
			}
		}
	}
	return &collogspb.ExportLogsServiceResponse{}, nil
}

func (r *receiver) spans() []span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]span(nil), r.sp...)
}

func (r *receiver) logRecords() []logRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]logRecord(nil), r.logs...)
}
