package instrument

import (
	"context"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
)

// GRPCOptions configures ServerOptions and DialOptions.
type GRPCOptions struct {
	// TracerProvider creates the spans. Nil means otel.GetTracerProvider().
	TracerProvider trace.TracerProvider
	// Propagators carry the trace context in gRPC metadata. Nil means
	// otel.GetTextMapPropagator().
	Propagators propagation.TextMapPropagator
	// MeterProvider receives otelgrpc's own OpenTelemetry metrics. Nil means
	// a no-op provider, as RED metrics already come from Metrics.
	MeterProvider metric.MeterProvider
}

func (o GRPCOptions) otelOptions() []otelgrpc.Option {
	mp := o.MeterProvider
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	opts := []otelgrpc.Option{otelgrpc.WithMeterProvider(mp)}
	if o.TracerProvider != nil {
		opts = append(opts, otelgrpc.WithTracerProvider(o.TracerProvider))
	}
	if o.Propagators != nil {
		opts = append(opts, otelgrpc.WithPropagators(o.Propagators))
	}
	return opts
}

// panicMessage is the status message a client gets for a recovered panic;
// the panic value itself stays on the server span, as it may hold internals.
const panicMessage = "internal error"

// ServerOptions returns the options that instrument a grpc.Server: the
// otelgrpc server stats handler (spans, trace context extraction) and unary
// and stream interceptors that
//   - recover a handler panic, record it on the span (exception event with
//     stack trace, Error status) and turn it into a codes.Internal error
//     whose message does not reveal the panic value; unlike the HTTP
//     middleware this does not re-panic, because grpc-go has no recovery of
//     its own and a panic would kill the process;
//   - record grpc_server_handling_seconds{grpc_service,grpc_method,grpc_code}
//     and grpc_server_requests_in_flight (when m is not nil).
//
// The interceptors are added with grpc.ChainUnaryInterceptor and
// grpc.ChainStreamInterceptor, so they compose with the caller's own; they
// run first (outermost) only if these options come first. Only registered
// methods reach interceptors, which keeps the method label bounded.
func ServerOptions(m *Metrics, opts GRPCOptions) []grpc.ServerOption {
	s := &grpcServer{m: m}
	return []grpc.ServerOption{
		grpc.StatsHandler(otelgrpc.NewServerHandler(opts.otelOptions()...)),
		grpc.ChainUnaryInterceptor(s.unary),
		grpc.ChainStreamInterceptor(s.stream),
	}
}

type grpcServer struct{ m *Metrics }

func (s *grpcServer) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	start := s.begin()
	defer func() {
		if rec := recover(); rec != nil {
			resp, err = nil, recoverToStatus(ctx, rec)
		}
		s.end(info.FullMethod, err, start)
	}()
	return handler(ctx, req)
}

func (s *grpcServer) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	start := s.begin()
	defer func() {
		if rec := recover(); rec != nil {
			err = recoverToStatus(ss.Context(), rec)
		}
		s.end(info.FullMethod, err, start)
	}()
	return handler(srv, ss)
}

func (s *grpcServer) begin() time.Time {
	if s.m != nil {
		s.m.grpcServerInFlight.Inc()
	}
	return time.Now()
}

func (s *grpcServer) end(fullMethod string, err error, start time.Time) {
	if s.m == nil {
		return
	}
	s.m.grpcServerInFlight.Dec()
	service, method := splitMethod(fullMethod)
	s.m.grpcServerDuration.WithLabelValues(service, method, status.Code(err).String()).
		Observe(time.Since(start).Seconds())
}

// recoverToStatus records the panic on the span in ctx (the otelgrpc server
// span) and returns the error the client receives.
func recoverToStatus(ctx context.Context, rec any) error {
	recordPanic(trace.SpanFromContext(ctx), rec)
	return status.Error(codes.Internal, panicMessage)
}

// splitMethod splits "/package.Service/Method" into its two labels.
func splitMethod(fullMethod string) (service, method string) {
	service, method, ok := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	if !ok || service == "" || method == "" {
		return "unknown", "unknown"
	}
	return service, method
}

// DialOptions returns the options that instrument a grpc.ClientConn: the
// otelgrpc client stats handler (spans, trace context injection) and, when m
// is not nil, a stats handler recording
// grpc_client_handling_seconds{grpc_service,grpc_method,grpc_code} and
// grpc_client_requests_in_flight.
//
// Client metrics use a stats handler rather than interceptors because it
// sees the true end of streaming calls (a stream interceptor only sees the
// stream being opened). Like otelgrpc's spans, each observation is one call
// attempt: with retries enabled in the service config, a retried call is
// observed once per attempt.
func DialOptions(m *Metrics, opts GRPCOptions) []grpc.DialOption {
	dopts := []grpc.DialOption{grpc.WithStatsHandler(otelgrpc.NewClientHandler(opts.otelOptions()...))}
	if m != nil {
		dopts = append(dopts, grpc.WithStatsHandler(&grpcClientMetrics{m: m}))
	}
	return dopts
}

// grpcClientMetrics is a stats.Handler recording client RED metrics.
type grpcClientMetrics struct{ m *Metrics }

type attemptKey struct{}

// attempt is the per-attempt state carried from TagRPC to HandleRPC.
type attempt struct {
	service, method string
	begun           bool
}

// TagRPC implements stats.Handler.
func (h *grpcClientMetrics) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	a := &attempt{}
	a.service, a.method = splitMethod(info.FullMethodName)
	return context.WithValue(ctx, attemptKey{}, a)
}

// HandleRPC implements stats.Handler.
func (h *grpcClientMetrics) HandleRPC(ctx context.Context, rs stats.RPCStats) {
	a, ok := ctx.Value(attemptKey{}).(*attempt)
	if !ok {
		return
	}
	switch e := rs.(type) {
	case *stats.Begin:
		a.begun = true
		h.m.grpcClientInFlight.Inc()
	case *stats.End:
		// Only balance the gauge for attempts whose Begin was seen.
		if a.begun {
			h.m.grpcClientInFlight.Dec()
		}
		h.m.grpcClientDuration.WithLabelValues(a.service, a.method, status.Code(e.Error).String()).
			Observe(e.EndTime.Sub(e.BeginTime).Seconds())
	}
}

// TagConn implements stats.Handler.
func (*grpcClientMetrics) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}

// HandleConn implements stats.Handler.
func (*grpcClientMetrics) HandleConn(context.Context, stats.ConnStats) {}
