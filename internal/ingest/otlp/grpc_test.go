package otlp

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	colltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/vigil-observability/vigil/internal/ingest"
)

// startGRPC serves NewGRPCServer(opts) on an in-memory listener and returns
// a client connection to it.
func startGRPC(t *testing.T, opts Options, extra ...grpc.ServerOption) (*grpc.ClientConn, *grpc.Server) {
	t.Helper()
	return serveGRPC(t, NewGRPCServer(opts, extra...))
}

// serveGRPC serves srv on an in-memory listener and returns a client
// connection to it.
func serveGRPC(t *testing.T, srv *grpc.Server) (*grpc.ClientConn, *grpc.Server) {
	t.Helper()
	lis := bufconn.Listen(4 << 20)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, srv
}

func TestGRPCExport(t *testing.T) {
	rec := &recorder{}
	conn, _ := startGRPC(t, testOptions(rec))
	ctx := t.Context()

	tresp, err := ptraceotlp.NewGRPCClient(conn).Export(ctx, ptraceotlp.NewExportRequestFromTraces(makeTraces("a", "b")))
	if err != nil {
		t.Fatalf("traces: %v", err)
	}
	if ps := tresp.PartialSuccess(); ps.RejectedSpans() != 0 || ps.ErrorMessage() != "" {
		t.Errorf("unexpected partial success %d %q", ps.RejectedSpans(), ps.ErrorMessage())
	}
	_, err = plogotlp.NewGRPCClient(conn).Export(ctx, plogotlp.NewExportRequestFromLogs(makeLogs("zipped")),
		grpc.UseCompressor(gzip.Name))
	if err != nil {
		t.Fatalf("gzip logs: %v", err)
	}
	if _, err := pmetricotlp.NewGRPCClient(conn).Export(ctx, pmetricotlp.NewExportRequestFromMetrics(makeMetrics(4))); err != nil {
		t.Fatalf("metrics: %v", err)
	}

	if got := rec.spanNames(); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("spans %q", got)
	}
	if got := rec.logBodies(); !slices.Equal(got, []string{"zipped"}) {
		t.Errorf("logs %q", got)
	}
	if got := rec.dataPoints(); got != 4 {
		t.Errorf("%d data points", got)
	}
}

func TestGRPCPartialSuccess(t *testing.T) {
	rec := &recorder{}
	conn, _ := startGRPC(t, testOptions(rec))

	// Wrong-length ids cannot be expressed with pdata: send the request
	// built with the generic OTLP types.
	var req colltracepb.ExportTraceServiceRequest
	if err := protoUnmarshal(badIDTracesProto(t), &req); err != nil {
		t.Fatal(err)
	}
	var resp colltracepb.ExportTraceServiceResponse
	if err := conn.Invoke(t.Context(), "/"+traceServiceName+"/Export", &req, &resp); err != nil {
		t.Fatalf("Export: %v", err)
	}
	ps := resp.GetPartialSuccess()
	if ps.GetRejectedSpans() != 2 || ps.GetErrorMessage() == "" {
		t.Errorf("partial success = %v", ps)
	}
	if got := rec.spanNames(); !slices.Equal(got, []string{"good", "good2"}) {
		t.Errorf("spans %q", got)
	}
}

func TestGRPCErrors(t *testing.T) {
	tests := []struct {
		name        string
		consumerErr error
		send        func(ctx context.Context, conn *grpc.ClientConn) error
		wantCode    codes.Code
		wantRetry   bool
	}{
		{
			name:        "overloaded",
			consumerErr: ingest.ErrOverloaded,
			send:        exportTraces(makeTraces("a")),
			wantCode:    codes.Unavailable, wantRetry: true,
		},
		{
			name:        "storage unavailable",
			consumerErr: errors.Join(errors.New("disk"), ingest.ErrUnavailable),
			send:        exportTraces(makeTraces("a")),
			wantCode:    codes.Unavailable, wantRetry: true,
		},
		{
			name:        "other storage error",
			consumerErr: errors.New("boom"),
			send:        exportTraces(makeTraces("a")),
			wantCode:    codes.Unavailable, wantRetry: true,
		},
		{
			name:     "undecodable",
			send:     sendRaw("/"+traceServiceName+"/Export", []byte{0xff, 0xff, 0xff}),
			wantCode: codes.InvalidArgument,
		},
		{
			name:     "too large",
			send:     sendRaw("/"+logsServiceName+"/Export", make([]byte, 1<<20+1)),
			wantCode: codes.ResourceExhausted,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{err: tt.consumerErr}
			conn, _ := startGRPC(t, testOptions(rec))
			err := tt.send(t.Context(), conn)
			st := status.Convert(err)
			if st.Code() != tt.wantCode {
				t.Fatalf("code = %v (%v), want %v", st.Code(), err, tt.wantCode)
			}
			var retry *errdetails.RetryInfo
			for _, d := range st.Details() {
				if ri, ok := d.(*errdetails.RetryInfo); ok {
					retry = ri
				}
			}
			if (retry != nil) != tt.wantRetry {
				t.Fatalf("RetryInfo = %v, want present: %v", retry, tt.wantRetry)
			}
			if retry != nil && retry.GetRetryDelay().AsDuration() != DefaultRetryAfter {
				t.Errorf("retry delay = %v", retry.GetRetryDelay().AsDuration())
			}
		})
	}
}

func exportTraces(td ptrace.Traces) func(context.Context, *grpc.ClientConn) error {
	return func(ctx context.Context, conn *grpc.ClientConn) error {
		_, err := ptraceotlp.NewGRPCClient(conn).Export(ctx, ptraceotlp.NewExportRequestFromTraces(td))
		return err
	}
}

// sendRaw sends arbitrary bytes as a request message.
func sendRaw(method string, body []byte) func(context.Context, *grpc.ClientConn) error {
	return func(ctx context.Context, conn *grpc.ClientConn) error {
		codec := rawCodec{next: encoding.GetCodecV2("proto")}
		return conn.Invoke(ctx, method, &rawMessage{data: body}, new(rawMessage), grpc.ForceCodecV2(codec))
	}
}

func TestGRPCDisabledSignalAndForeignServices(t *testing.T) {
	var intercepted atomic.Value
	interceptor := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		intercepted.Store(info.FullMethod)
		return handler(ctx, req)
	}
	rec := &recorder{}
	lis := bufconn.Listen(1 << 20)
	srv := NewGRPCServer(Options{Traces: rec, Now: func() time.Time { return testNow }}, grpc.UnaryInterceptor(interceptor))
	// Services the caller adds still use the ordinary protobuf codec.
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := t.Context()

	if _, err := ptraceotlp.NewGRPCClient(conn).Export(ctx, ptraceotlp.NewExportRequestFromTraces(makeTraces("a"))); err != nil {
		t.Fatalf("traces: %v", err)
	}
	if got, _ := intercepted.Load().(string); got != "/"+traceServiceName+"/Export" {
		t.Errorf("interceptor saw %q", got)
	}
	_, err = plogotlp.NewGRPCClient(conn).Export(ctx, plogotlp.NewExportRequestFromLogs(makeLogs("x")))
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("logs without consumer: %v, want Unimplemented", err)
	}
	hc, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health check: %v %v", hc, err)
	}
}
