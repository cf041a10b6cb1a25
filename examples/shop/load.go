package shop

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// maxInFlight bounds the load generator's concurrent requests: when the
// shop is slower than the rate asks for (slow-payments), ticks are skipped
// rather than piling up goroutines.
const maxInFlight = 64

// testCard is a Luhn-valid test card number that the SDK must redact.
const testCard = "4111111111111111"

// generateLoad calls the gateway rps times a second until ctx ends: product
// listings, product reads and orders, over every product id (so that the
// panic fault's ids come up).
func generateLoad(ctx context.Context, gatewayURL string, rps float64, log *slog.Logger) {
	client := &http.Client{Timeout: 10 * time.Second}
	interval := max(time.Duration(float64(time.Second)/rps), time.Microsecond)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	defer wg.Wait()
	skipped := 0
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		select {
		case sem <- struct{}{}:
		default:
			if skipped++; skipped%100 == 1 {
				log.Warn("load generator saturated; skipping requests", "skipped", skipped)
			}
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			code, err := loadRequest(ctx, client, gatewayURL, i)
			if err != nil && ctx.Err() == nil {
				log.Debug("load request failed", "error", err)
			} else if code >= 500 {
				log.Debug("load request answered", "status", code)
			}
		})
	}
}

// loadRequest sends the i-th request of the mix: one listing, two product
// reads and one order in every four.
func loadRequest(ctx context.Context, c *http.Client, gatewayURL string, i int) (int, error) {
	id := i%catalogSize + 1
	var (
		code int
		err  error
	)
	switch i % 4 {
	case 0:
		code, _, err = call(ctx, c, http.MethodGet, gatewayURL+"/products", nil)
	case 1, 2:
		code, _, err = call(ctx, c, http.MethodGet, fmt.Sprintf("%s/products/%d", gatewayURL, id), nil)
	default:
		code, _, err = call(ctx, c, http.MethodPost, gatewayURL+"/orders",
			orderRequest{ProductID: id, Quantity: 1 + i%3, CardNumber: testCard})
	}
	return code, err
}
