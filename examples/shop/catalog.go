package shop

import (
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	vigil "github.com/vigil-observability/vigil/sdk"
)

// product is a catalog entry.
type product struct {
	ID         int    `json:"id"`
	Name       string `json:"name"`
	PriceCents int64  `json:"price_cents"`
}

// catalogSize is how many products the catalog holds (ids 1..catalogSize).
const catalogSize = 20

// catalog serves a fixed, in-memory product list.
type catalog struct {
	log      *slog.Logger
	products []product
	served   prometheus.Counter
	panicky  bool
}

func newCatalog(svc *vigil.Service, addr string, faults faultSet) *node {
	c := &catalog{
		log:     svc.Logger,
		panicky: faults[faultPanic],
		served: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "catalog_products_served_total",
			Help: "Products returned by GET /products/{id}.",
		}),
	}
	for i := range catalogSize {
		c.products = append(c.products, product{ID: i + 1, Name: fmt.Sprintf("widget-%02d", i+1), PriceCents: int64(500 + 125*i)})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /products", c.list)
	mux.HandleFunc("GET /products/{id}", c.get)
	if faults[faultUnregisteredMetrics] {
		// The bug: the service's metrics live on a registry of its own,
		// which is what /metrics serves; the SDK's registry (runtime,
		// process, build_info, RED histograms) is never exposed.
		reg := prometheus.NewRegistry()
		reg.MustRegister(c.served)
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		svc.Health.Mount(mux)
	} else {
		svc.Registry.MustRegister(c.served)
		svc.Mount(mux)
	}
	return &node{svc: svc, servers: []*http.Server{svc.NewServer(addr, mux)}}
}

func (c *catalog) list(w http.ResponseWriter, r *http.Request) {
	c.log.InfoContext(r.Context(), "products listed", "count", len(c.products))
	writeJSON(w, http.StatusOK, c.products)
}

func (c *catalog) get(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil || id < 1 || id > len(c.products) {
		writeError(w, http.StatusNotFound, "no such product")
		return
	}
	if c.panicky && id%10 == 0 {
		// The bug: an unchecked invariant. The SDK middleware records the
		// panic on the span; http.Server recovers it and drops the
		// connection, and the process keeps serving.
		panic(fmt.Sprintf("catalog: no price cached for product %d", id))
	}
	p := c.products[id-1]
	c.served.Inc()
	c.log.InfoContext(r.Context(), "product fetched", "product_id", p.ID)
	writeJSON(w, http.StatusOK, p)
}
