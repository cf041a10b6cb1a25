package otlp

import (
	"context"
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/gzip" // clients may gzip their requests
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/vigil-observability/vigil/internal/ingest"
)

// The OTLP gRPC services. Their messages are the ones pdata's
// ptraceotlp/plogotlp/pmetricotlp encode; the names come from the OTLP
// protocol (opentelemetry/proto/collector/*/v1/*_service.proto).
const (
	traceServiceName   = "opentelemetry.proto.collector.trace.v1.TraceService"
	logsServiceName    = "opentelemetry.proto.collector.logs.v1.LogsService"
	metricsServiceName = "opentelemetry.proto.collector.metrics.v1.MetricsService"
)

// NewGRPCServer returns a gRPC server with the OTLP trace, logs and metrics
// services registered for the signals whose consumer is set. It accepts
// gzip-compressed requests of up to Limits.MaxRequestBytes (decompressed).
// Answers: the ExportResponse with a partial success when items were
// dropped; INVALID_ARGUMENT for an undecodable request; UNAVAILABLE with a
// RetryInfo detail when vigil is overloaded or storage failed, so the
// client retries. extra options are appended (interceptors, credentials,
// keepalive); the caller serves and stops the server.
//
// The services are registered by hand rather than with pdata's
// RegisterGRPCServer because pdata decodes the request before any of our
// code runs, and refuses the whole batch (as INTERNAL) when a single id has
// the wrong length. Here the request arrives as bytes and goes through the
// same decode path as OTLP/HTTP, with its per-item fallback; the response
// is pdata's ExportResponse encoding. Interceptors therefore see the
// request as an opaque message.
func NewGRPCServer(opts Options, extra ...grpc.ServerOption) *grpc.Server {
	r := newReceiver(opts)
	base := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(int(r.opts.Limits.MaxRequestBytes)),
		grpc.ForceServerCodecV2(rawCodec{next: encoding.GetCodecV2("proto")}),
	}
	s := grpc.NewServer(append(base, extra...)...)
	if r.traces != nil {
		s.RegisterService(r.serviceDesc(traceServiceName, "opentelemetry/proto/collector/trace/v1/trace_service.proto"), r.traces)
	}
	if r.logs != nil {
		s.RegisterService(r.serviceDesc(logsServiceName, "opentelemetry/proto/collector/logs/v1/logs_service.proto"), r.logs)
	}
	if r.metrics != nil {
		s.RegisterService(r.serviceDesc(metricsServiceName, "opentelemetry/proto/collector/metrics/v1/metrics_service.proto"), r.metrics)
	}
	return s
}

func (r *receiver) serviceDesc(service, file string) *grpc.ServiceDesc {
	fullMethod := "/" + service + "/Export"
	return &grpc.ServiceDesc{
		ServiceName: service,
		HandlerType: (*exporter)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Export",
			Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
				in := new(rawMessage)
				if err := dec(in); err != nil {
					return nil, err
				}
				handle := func(ctx context.Context, req any) (any, error) {
					return r.grpcExport(ctx, srv.(exporter), req.(*rawMessage))
				}
				if interceptor == nil {
					return handle(ctx, in)
				}
				return interceptor(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: fullMethod}, handle)
			},
		}},
		Metadata: file,
	}
}

func (r *receiver) grpcExport(ctx context.Context, e exporter, in *rawMessage) (*rawMessage, error) {
	release, ok := r.admit(e.signal())
	if !ok {
		in.free()
		return nil, r.grpcError(ingest.ErrOverloaded)
	}
	defer release()
	resp, err := e.export(ctx, in.bytes(), in.free, encProto)
	if err != nil {
		return nil, r.grpcError(err)
	}
	return &rawMessage{data: resp}, nil
}

func (r *receiver) grpcError(err error) error {
	if errors.Is(err, errUndecodable) {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	msg := ingest.ErrUnavailable.Error()
	if errors.Is(err, ingest.ErrOverloaded) {
		msg = ingest.ErrOverloaded.Error()
	}
	st, derr := status.New(codes.Unavailable, msg).WithDetails(&errdetails.RetryInfo{
		RetryDelay: durationpb.New(r.opts.RetryAfter),
	})
	if derr != nil {
		return status.Error(codes.Unavailable, msg)
	}
	return st.Err()
}

// rawMessage carries an encoded OTLP message through gRPC untouched, so
// that decoding happens in our code.
type rawMessage struct {
	buf  mem.Buffer // received request, until freed
	data []byte     // response to send
}

func (m *rawMessage) bytes() []byte {
	if m.buf == nil {
		return nil
	}
	return m.buf.ReadOnlyData()
}

func (m *rawMessage) free() {
	if m.buf != nil {
		m.buf.Free()
		m.buf = nil
	}
}

// rawCodec passes rawMessage through as bytes and hands every other
// message (health checks, reflection, whatever else the caller registers)
// to the codec that would have been used otherwise.
type rawCodec struct{ next encoding.CodecV2 }

func (c rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(*rawMessage); ok {
		return mem.BufferSlice{mem.SliceBuffer(m.data)}, nil
	}
	return c.next.Marshal(v)
}

func (c rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if m, ok := v.(*rawMessage); ok {
		// Keeps a reference (or a pooled copy) beyond gRPC's own Free.
		m.buf = data.MaterializeToBuffer(mem.DefaultBufferPool())
		return nil
	}
	return c.next.Unmarshal(data, v)
}

func (rawCodec) Name() string { return "proto" }
