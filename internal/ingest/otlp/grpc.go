package otlp

import (
	"context"
	"errors"
	"net"
	"time"

	"golang.org/x/net/netutil"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/gzip" // clients may gzip their requests
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/vigil-observability/vigil/internal/ingest"
	"github.com/vigil-observability/vigil/internal/ingest/decodecost"
	"github.com/vigil-observability/vigil/internal/ingest/limits"
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
// dropped; INVALID_ARGUMENT for an undecodable request; RESOURCE_EXHAUSTED
// for a request too large to decode; UNAVAILABLE with a RetryInfo detail
// when vigil is overloaded or storage failed, so the client retries. extra
// options are appended (tap handle, interceptors, credentials); the caller
// serves and stops the server.
//
// The services are registered by hand rather than with pdata's
// RegisterGRPCServer because pdata decodes the request before any of our
// code runs, and refuses the whole batch (as INTERNAL) when a single id has
// the wrong length. Here the request arrives as bytes and goes through the
// same decode path as OTLP/HTTP, with its per-item fallback; the response
// is pdata's ExportResponse encoding.
//
// The message is read only when the handler asks for it (grpc-go reads a
// unary request lazily, when the handler calls its decode function), so the
// handler takes its admission slot first: a refused call costs no more
// than the flow-control window. Unary interceptors run after the read;
// authentication must therefore happen in a tap handle (see
// auth.Authenticator.GRPCOptions), which sees the metadata before the
// stream exists.
func NewGRPCServer(opts Options, extra ...grpc.ServerOption) *grpc.Server {
	return newReceiver(opts).grpcServer(extra...)
}

// Transport bounds of the gRPC server. Per connection, unread request
// bytes are bounded by the streams it may open times the stream window
// (a stream's data past its window is a flow-control error), and streams
// past the admission slots are refused as soon as they start.
const (
	// GRPCMaxConcurrentStreams caps the calls one connection has open.
	GRPCMaxConcurrentStreams = 64
	// grpcStreamWindow and grpcConnWindow are fixed flow-control
	// windows. Setting them turns off gRPC's bandwidth-delay estimation,
	// which would otherwise grow a stream's window to 16 MiB.
	grpcStreamWindow = 256 << 10
	grpcConnWindow   = 1 << 20
	grpcBufferSize   = 32 << 10
	// GRPCMaxConnections caps the connections the listener accepts at
	// once (see LimitGRPCListener); past it new connections wait in the
	// kernel's accept queue.
	GRPCMaxConnections = 1024
)

func (r *receiver) grpcServer(extra ...grpc.ServerOption) *grpc.Server {
	base := []grpc.ServerOption{
		// Also bounds gzip inflation: gRPC stops decompressing past it.
		grpc.MaxRecvMsgSize(int(r.opts.Limits.MaxRequestBytes)),
		grpc.ForceServerCodecV2(rawCodec{next: encoding.GetCodecV2("proto")}),
		grpc.MaxConcurrentStreams(GRPCMaxConcurrentStreams),
		grpc.InitialWindowSize(grpcStreamWindow),
		grpc.InitialConnWindowSize(grpcConnWindow),
		grpc.ReadBufferSize(grpcBufferSize),
		grpc.WriteBufferSize(grpcBufferSize),
		// Clients may ping every 10 s, even between calls; one pinging
		// faster is disconnected. Connections idle for 5 minutes are
		// closed, so abandoned ones do not hold a connection slot.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: 5 * time.Minute}),
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

// LimitGRPCListener returns ln accepting at most GRPCMaxConnections
// connections at once, which with the per-connection bounds above bounds
// what the transport can buffer.
func LimitGRPCListener(ln net.Listener) net.Listener {
	return netutil.LimitListener(ln, GRPCMaxConnections)
}

func (r *receiver) serviceDesc(service, file string) *grpc.ServiceDesc {
	fullMethod := "/" + service + "/Export"
	return &grpc.ServiceDesc{
		ServiceName: service,
		HandlerType: (*exporter)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Export",
			Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
				e := srv.(exporter)
				release, ok := r.admit(e.signal())
				if !ok {
					return nil, r.grpcError(ingest.ErrOverloaded)
				}
				defer release()
				// gRPC inflates the message without a hook to charge it as
				// it goes: the most it may take is paid for first.
				res := r.opts.DecodeBudget.Start()
				defer res.Release()
				if err := res.Resize(min(r.opts.Limits.MaxRequestBytes, r.opts.DecodeBudget.Size())); err != nil {
					r.opts.Ingest.Reject(e.signal(), limits.ReasonOverloaded, 1)
					return nil, r.grpcError(ingest.ErrOverloaded)
				}
				in := new(rawMessage)
				defer in.free() // when an interceptor refuses the call
				if err := dec(in); err != nil {
					return nil, err
				}
				handle := func(ctx context.Context, req any) (any, error) {
					return r.grpcExport(ctx, e, req.(*rawMessage), res)
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

// grpcExport decodes and consumes a request that was admitted and read.
func (r *receiver) grpcExport(ctx context.Context, e exporter, in *rawMessage, res *decodecost.Reservation) (*rawMessage, error) {
	resp, err := e.export(ctx, in.bytes(), in.free, encProto, res)
	if err != nil {
		return nil, r.grpcError(err)
	}
	return &rawMessage{data: resp}, nil
}

func (r *receiver) grpcError(err error) error {
	if errors.Is(err, errUndecodable) {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	if errors.Is(err, decodecost.ErrTooLarge) {
		// Without RetryInfo, OTLP clients treat it as permanent, as they
		// do gRPC's own refusal of a message above MaxRecvMsgSize.
		return status.Error(codes.ResourceExhausted, err.Error()+"; send smaller batches")
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
