package shop

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	vigil "github.com/vigil-observability/vigil/sdk"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

// chargeMethod is the one gRPC method payments serves. The service is
// registered by hand (paymentsDesc) with structpb.Struct messages, which
// the default proto codec handles, so the demo needs no .proto generation.
const chargeMethod = "/shop.Payments/Charge"

// charger is the payments service's server interface, the HandlerType of
// paymentsDesc.
type charger interface {
	Charge(ctx context.Context, in *structpb.Struct) (*structpb.Struct, error)
}

// paymentsDesc is what protoc-gen-go-grpc would generate for
// "service Payments { rpc Charge(Struct) returns (Struct); }".
var paymentsDesc = grpc.ServiceDesc{
	ServiceName: "shop.Payments",
	HandlerType: (*charger)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Charge",
		Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			in := new(structpb.Struct)
			if err := dec(in); err != nil {
				return nil, err
			}
			c := srv.(charger)
			if interceptor == nil {
				return c.Charge(ctx, in)
			}
			info := &grpc.UnaryServerInfo{Server: srv, FullMethod: chargeMethod}
			return interceptor(ctx, in, info, func(ctx context.Context, req any) (any, error) {
				return c.Charge(ctx, req.(*structpb.Struct))
			})
		},
	}},
	Metadata: "shop/payments",
}

// payments charges cards through a (simulated) card processor, bounded by
// the timeout of its settings, which it reads from the configuration
// centre (settings.go). Its every fifth charge fails under the errors
// fault: deterministic, so that a handful of orders always shows failures.
type payments struct {
	log      *slog.Logger
	charges  atomic.Int64
	slow     bool
	failing  bool
	settings atomic.Pointer[paymentSettings]
}

func newPayments(svc *vigil.Service, addr string, faults faultSet) (*node, error) {
	p := &payments{log: svc.Logger, slow: faults[faultSlowPayments], failing: faults[faultErrors]}
	watchSettings(svc, &p.settings)
	gs := grpc.NewServer(svc.GRPCServerOptions()...)
	gs.RegisterService(&paymentsDesc, p)

	mux := http.NewServeMux()
	svc.Mount(mux)
	srv := svc.NewServer(addr, mux)
	// One port for both: gRPC requests (HTTP/2 with a gRPC content type) go
	// to the gRPC server, the rest (/metrics, /healthz) to the instrumented
	// mux. gRPC gets its spans and metrics from its own server options, so
	// it bypasses the HTTP middleware rather than being traced twice.
	web := srv.Handler
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			gs.ServeHTTP(w, r)
			return
		}
		web.ServeHTTP(w, r)
	})
	// gRPC clients speak HTTP/2 without TLS (prior knowledge).
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	return &node{svc: svc, servers: []*http.Server{srv}, cleanup: gs.Stop}, nil
}

// Charge implements charger.
func (p *payments) Charge(ctx context.Context, in *structpb.Struct) (*structpb.Struct, error) {
	n := p.charges.Add(1)
	f := in.GetFields()
	orderID := f["order_id"].GetStringValue()
	// card_number is redacted by the SDK's logger, by key and by value.
	p.log.InfoContext(ctx, "charging card", "order_id", orderID,
		"amount_cents", int64(f["amount_cents"].GetNumberValue()), "card_number", f["card_number"].GetStringValue())
	set := p.settings.Load()
	if set.FraudCheck {
		p.log.DebugContext(ctx, "fraud check passed", "order_id", orderID)
	}
	// The card processor answers in 2-5 ms, or 300-800 ms under the
	// slow-payments fault, within the configured timeout. Under the fault
	// the first fraudScoreTime of that is CPU burnt in scoreFraud, so that
	// payments' CPU flame graph shows the slow path (a sleep alone shows
	// nothing in a CPU profile).
	start := time.Now()
	d := 2*time.Millisecond + rand.N(3*time.Millisecond)
	if p.slow {
		d = 300*time.Millisecond + rand.N(500*time.Millisecond)
		fraudSink.Add(scoreFraud(orderID, fraudScoreTime))
	}
	select {
	case <-time.After(d - time.Since(start)):
	case <-time.After(set.Timeout):
		p.log.WarnContext(ctx, "payment processor timed out", "order_id", orderID, "timeout", set.Timeout.String())
		return nil, status.Errorf(codes.DeadlineExceeded, "payments: processor did not answer within %s", set.Timeout)
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	if p.failing && n%5 == 0 {
		p.log.WarnContext(ctx, "payment processor unavailable", "order_id", orderID)
		return nil, status.Error(codes.Unavailable, "payments: processor unavailable")
	}
	paymentID := fmt.Sprintf("pay-%06d", n)
	p.log.InfoContext(ctx, "charge captured", "order_id", orderID, "payment_id", paymentID)
	return structpb.NewStruct(map[string]any{"payment_id": paymentID, "status": "captured", "fraud_checked": set.FraudCheck})
}

// fraudScoreTime is the CPU a charge spends in scoreFraud under the
// slow-payments fault: a fraction of its 300-800 ms, so the demo's load
// costs a few percent of a core, yet every profile of payments shows it.
const fraudScoreTime = 40 * time.Millisecond

// fraudSink keeps scoreFraud's result alive.
var fraudSink atomic.Uint64

// scoreFraud is the slow-payments fault's slow path: a (meaningless)
// fraud-scoring loop over the order id that burns CPU for d.
//
//go:noinline
func scoreFraud(orderID string, d time.Duration) uint64 {
	x := uint64(88172645463325252)
	for _, c := range []byte(orderID) {
		x = x*31 + uint64(c)
	}
	for end := time.Now().Add(d); time.Now().Before(end); {
		for range 50_000 {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
		}
	}
	return x
}
