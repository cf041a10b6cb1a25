package shop

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"

	vigil "github.com/vigil-observability/vigil/sdk"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

// placeRequest is orders' POST /orders body, as the gateway sends it.
type placeRequest struct {
	ProductID   int    `json:"product_id"`
	Quantity    int    `json:"quantity"`
	AmountCents int64  `json:"amount_cents"`
	CardNumber  string `json:"card_number"`
}

// orderResponse is orders' answer to a placed order.
type orderResponse struct {
	OrderID   string `json:"order_id"`
	PaymentID string `json:"payment_id"`
}

// orders places orders, charging them through payments over gRPC.
type orders struct {
	log      *slog.Logger
	payments *grpc.ClientConn
	next     atomic.Int64
	// noCtx switches Info logging to the context-blind Logger.Info, the
	// log-without-context fault.
	noCtx bool
}

func newOrders(svc *vigil.Service, addr, paymentsAddr string, faults faultSet) (*node, error) {
	conn, err := grpc.NewClient(paymentsAddr,
		append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, svc.GRPCDialOptions()...)...)
	if err != nil {
		return nil, fmt.Errorf("shop: orders: dial payments: %w", err)
	}
	o := &orders{log: svc.Logger, payments: conn, noCtx: faults[faultLogWithoutContext]}
	// Non-critical: without payments orders cannot charge, but it can still
	// answer (with 502), so it should not be taken out of rotation.
	svc.Health.Register("payments", func(context.Context) error {
		if st := conn.GetState(); st == connectivity.TransientFailure || st == connectivity.Shutdown {
			return fmt.Errorf("payments connection %s", st)
		}
		return nil
	})
	mux := http.NewServeMux()
	mux.HandleFunc("POST /orders", o.place)
	svc.Mount(mux)
	return &node{
		svc:     svc,
		servers: []*http.Server{svc.NewServer(addr, mux)},
		cleanup: func() { _ = conn.Close() },
	}, nil
}

// logInfo logs at Info with or without the request context, which is the
// whole difference between a log line that joins its trace and one that
// does not.
func (o *orders) logInfo(ctx context.Context, msg string, args ...any) {
	if o.noCtx {
		o.log.Info(msg, args...) // the bug: ctx dropped
		return
	}
	o.log.InfoContext(ctx, msg, args...)
}

func (o *orders) place(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var req placeRequest
	if err := decodeJSON(r.Body, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	orderID := fmt.Sprintf("ord-%06d", o.next.Add(1))
	o.logInfo(ctx, "placing order", "order_id", orderID, "product_id", req.ProductID,
		"amount_cents", req.AmountCents, "card_number", req.CardNumber)
	in, err := structpb.NewStruct(map[string]any{
		"order_id":     orderID,
		"amount_cents": float64(req.AmountCents),
		"card_number":  req.CardNumber,
	})
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	out := new(structpb.Struct)
	if err := o.payments.Invoke(ctx, chargeMethod, in, out); err != nil {
		o.log.ErrorContext(ctx, "charge failed", "order_id", orderID, "grpc_code", status.Code(err).String(), "error", err.Error())
		writeError(w, http.StatusBadGateway, "payment failed")
		return
	}
	paymentID := out.GetFields()["payment_id"].GetStringValue()
	o.logInfo(ctx, "order placed", "order_id", orderID, "payment_id", paymentID)
	writeJSON(w, http.StatusCreated, orderResponse{OrderID: orderID, PaymentID: paymentID})
}
