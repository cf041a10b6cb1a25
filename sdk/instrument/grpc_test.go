package instrument

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

const (
	healthService = "grpc.health.v1.Health"
	checkSpan     = healthService + "/Check"
	watchSpan     = healthService + "/Watch"
)

// panickingHealth panics in both a unary and a streaming method.
type panickingHealth struct {
	healthpb.UnimplementedHealthServer
}

func (panickingHealth) Check(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	panic("check exploded")
}

func (panickingHealth) Watch(*healthpb.HealthCheckRequest, healthpb.Health_WatchServer) error {
	panic("watch exploded")
}

// startGRPC serves impl on 127.0.0.1:0 with ServerOptions and returns a
// health client dialed with DialOptions.
func startGRPC(t *testing.T, env *testEnv, impl healthpb.HealthServer) healthpb.HealthClient {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(ServerOptions(env.m, env.grpcOptions())...)
	healthpb.RegisterHealthServer(srv, impl)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)

	conn, err := grpc.NewClient(ln.Addr().String(), append(DialOptions(env.m, env.grpcOptions()),
		grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return healthpb.NewHealthClient(conn)
}

func TestGRPCUnaryHop(t *testing.T) {
	env := newTestEnv(t)
	client := startGRPC(t, env, health.NewServer())

	resp, err := client.Check(t.Context(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("status = %v", resp.GetStatus())
	}

	serverSpan := env.sink.waitEnded(trace.SpanKindServer, checkSpan)
	clientSpan := env.sink.waitEnded(trace.SpanKindClient, checkSpan)
	if serverSpan.SpanContext().TraceID() != clientSpan.SpanContext().TraceID() {
		t.Error("client and server spans are in different traces")
	}
	if got, want := serverSpan.Parent().SpanID(), clientSpan.SpanContext().SpanID(); got != want {
		t.Errorf("server parent = %s, want client span %s", got, want)
	}

	labels := map[string]string{"grpc_service": healthService, "grpc_method": "Check", "grpc_code": "OK"}
	for _, name := range []string{"grpc_server_handling_seconds", "grpc_client_handling_seconds"} {
		if n := sampleCount(t, env.reg, name, labels); n != 1 {
			t.Errorf("%s%v count = %d, want 1", name, labels, n)
		}
	}
}

func TestGRPCPanic(t *testing.T) {
	tests := []struct {
		name   string
		method string
		call   func(context.Context, healthpb.HealthClient) error
	}{
		{
			name: "unary", method: "Check",
			call: func(ctx context.Context, c healthpb.HealthClient) error {
				_, err := c.Check(ctx, &healthpb.HealthCheckRequest{})
				return err
			},
		},
		{
			name: "stream", method: "Watch",
			call: func(ctx context.Context, c healthpb.HealthClient) error {
				stream, err := c.Watch(ctx, &healthpb.HealthCheckRequest{})
				if err != nil {
					return err
				}
				_, err = stream.Recv()
				return err
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t)
			client := startGRPC(t, env, panickingHealth{})

			err := tt.call(t.Context(), client)
			st, _ := status.FromError(err)
			if st.Code() != grpccodes.Internal {
				t.Fatalf("error = %v, want codes.Internal", err)
			}
			if st.Message() != panicMessage {
				t.Errorf("message %q leaks the panic value; want %q", st.Message(), panicMessage)
			}

			span := env.sink.waitEnded(trace.SpanKindServer, healthService+"/"+tt.method)
			if span.Status().Code != codes.Error {
				t.Errorf("server span status = %v, want Error", span.Status())
			}
			if !hasEvent(span, "exception") {
				t.Error("server span has no exception event")
			}
			labels := map[string]string{"grpc_service": healthService, "grpc_method": tt.method, "grpc_code": "Internal"}
			for _, name := range []string{"grpc_server_handling_seconds", "grpc_client_handling_seconds"} {
				if n := sampleCount(t, env.reg, name, labels); n != 1 {
					t.Errorf("%s%v count = %d, want 1", name, labels, n)
				}
			}
		})
	}
}

func TestSplitMethod(t *testing.T) {
	tests := []struct{ in, service, method string }{
		{"/grpc.health.v1.Health/Check", healthService, "Check"},
		{"/pkg.Svc/", "unknown", "unknown"},
		{"garbage", "unknown", "unknown"},
		{"", "unknown", "unknown"},
	}
	for _, tt := range tests {
		s, m := splitMethod(tt.in)
		if s != tt.service || m != tt.method {
			t.Errorf("splitMethod(%q) = %q, %q; want %q, %q", tt.in, s, m, tt.service, tt.method)
		}
	}
}

// finiteWatch is a health server whose Watch stream sends two statuses and
// ends normally, the ordinary path of a server stream.
type finiteWatch struct {
	healthpb.UnimplementedHealthServer
}

func (finiteWatch) Watch(_ *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	for _, st := range []healthpb.HealthCheckResponse_ServingStatus{healthpb.HealthCheckResponse_NOT_SERVING, healthpb.HealthCheckResponse_SERVING} {
		if err := stream.Send(&healthpb.HealthCheckResponse{Status: st}); err != nil {
			return err
		}
	}
	return nil
}

func TestGRPCServerStream(t *testing.T) {
	env := newTestEnv(t)
	client := startGRPC(t, env, finiteWatch{})
	stream, err := client.Watch(t.Context(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var got int
	for {
		_, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		got++
	}
	if got != 2 {
		t.Fatalf("received %d messages, want 2", got)
	}
	serverSpan := env.sink.waitEnded(trace.SpanKindServer, watchSpan)
	clientSpan := env.sink.waitEnded(trace.SpanKindClient, watchSpan)
	if serverSpan.Parent().SpanID() != clientSpan.SpanContext().SpanID() {
		t.Error("the stream's server span is not a child of its client span")
	}
	labels := map[string]string{"grpc_service": healthService, "grpc_method": "Watch", "grpc_code": "OK"}
	for _, name := range []string{"grpc_server_handling_seconds", "grpc_client_handling_seconds"} {
		if n := sampleCount(t, env.reg, name, labels); n != 1 {
			t.Errorf("%s%v count = %d, want 1 for a stream that ended normally", name, labels, n)
		}
	}
}
