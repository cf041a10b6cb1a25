package shop

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	vigil "github.com/vigil-observability/vigil/sdk"
)

// gateway is the public entry point: it forwards catalog reads and, for an
// order, prices it with catalog before placing it with orders.
type gateway struct {
	log        *slog.Logger
	catalog    *http.Client
	orders     *http.Client
	catalogURL string
	ordersURL  string
}

// clientTimeout bounds every call between services, so a stuck callee turns
// into an error rather than a stuck caller.
const clientTimeout = 5 * time.Second

func newGateway(svc *vigil.Service, addr, catalogURL, ordersURL string, faults faultSet) *node {
	g := &gateway{
		log:        svc.Logger,
		catalog:    svc.HTTPClient(),
		orders:     svc.HTTPClient(),
		catalogURL: catalogURL,
		ordersURL:  ordersURL,
	}
	g.catalog.Timeout, g.orders.Timeout = clientTimeout, clientTimeout
	if faults[faultDropContext] {
		// The bug: a client built by hand next to the instrumented one. The
		// request still carries ctx, but nothing injects traceparent.
		g.catalog = &http.Client{Timeout: clientTimeout}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /products", g.listProducts)
	mux.HandleFunc("GET /products/{id}", g.getProduct)
	mux.HandleFunc("POST /orders", g.placeOrder)
	svc.Mount(mux)
	return &node{svc: svc, servers: []*http.Server{svc.NewServer(addr, mux)}}
}

// forward relays a catalog read, turning upstream failures into 502.
func (g *gateway) forward(w http.ResponseWriter, r *http.Request, url string) {
	code, body, err := call(r.Context(), g.catalog, http.MethodGet, url, nil)
	if err != nil || code >= 500 {
		g.log.ErrorContext(r.Context(), "catalog failed", "status", code, "error", errString(err))
		writeError(w, http.StatusBadGateway, "catalog unavailable")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

func (g *gateway) listProducts(w http.ResponseWriter, r *http.Request) {
	g.forward(w, r, g.catalogURL+"/products")
}

func (g *gateway) getProduct(w http.ResponseWriter, r *http.Request) {
	g.forward(w, r, g.catalogURL+"/products/"+r.PathValue("id"))
}

// orderRequest is the gateway's POST /orders body.
type orderRequest struct {
	ProductID  int    `json:"product_id"`
	Quantity   int    `json:"quantity"`
	CardNumber string `json:"card_number"`
}

func (g *gateway) placeOrder(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var req orderRequest
	if err := decodeJSON(r.Body, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if req.Quantity <= 0 {
		req.Quantity = 1
	}
	code, body, err := call(ctx, g.catalog, http.MethodGet, fmt.Sprintf("%s/products/%d", g.catalogURL, req.ProductID), nil)
	switch {
	case err != nil || code >= 500:
		g.log.ErrorContext(ctx, "pricing failed", "product_id", req.ProductID, "status", code, "error", errString(err))
		writeError(w, http.StatusBadGateway, "catalog unavailable")
		return
	case code != http.StatusOK:
		writeError(w, code, "unknown product")
		return
	}
	var p product
	if err := json.Unmarshal(body, &p); err != nil {
		writeError(w, http.StatusBadGateway, "catalog answered garbage")
		return
	}
	code, body, err = call(ctx, g.orders, http.MethodPost, g.ordersURL+"/orders", placeRequest{
		ProductID:   p.ID,
		Quantity:    req.Quantity,
		AmountCents: p.PriceCents * int64(req.Quantity),
		CardNumber:  req.CardNumber,
	})
	if err != nil || code >= 500 {
		g.log.ErrorContext(ctx, "order failed", "product_id", p.ID, "status", code, "error", errString(err))
		writeError(w, http.StatusBadGateway, "order not placed")
		return
	}
	g.log.InfoContext(ctx, "order relayed", "product_id", p.ID, "status", code)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

// errString is err's message, or "" for nil (slog would log "<nil>").
func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
