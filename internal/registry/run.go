package registry

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// Runner expires TTL checks and probes HTTP checks on a tick. It is a
// lifecycle.Component: Run returns when ctx ends, after the probes under
// way have returned.
type Runner struct {
	Registry *Registry
	// Tick is how often checks are expired and probes started; 0 is a
	// second.
	Tick time.Duration
	// Client makes the HTTP checks' probes; nil is a client that follows
	// no redirects.
	Client *http.Client
	// MaxProbes bounds the probes in flight; 0 is 16. A probe that finds
	// no slot waits for its next interval.
	MaxProbes int
	Logger    *slog.Logger
}

// Run expires and probes until ctx ends.
func (rn *Runner) Run(ctx context.Context) error {
	tick, client, slots := rn.Tick, rn.Client, rn.MaxProbes
	if tick <= 0 {
		tick = time.Second
	}
	if client == nil {
		client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if slots <= 0 {
		slots = 16
	}
	logger := rn.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	sem := make(chan struct{}, slots)
	var wg sync.WaitGroup
	defer wg.Wait()
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		now := rn.Registry.now()
		for _, id := range rn.Registry.Expire(now) {
			logger.Info("registry: removed an instance critical past its deregister-after period", "id", id)
		}
		for _, c := range rn.Registry.DueProbes(now) {
			select {
			case sem <- struct{}{}:
			default:
				continue
			}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				status, out := Probe(ctx, client, c)
				if ctx.Err() != nil {
					return
				}
				_ = rn.Registry.UpdateCheck(c.ID, status, out) // gone since: nothing to do
			}()
		}
	}
}

// Probe runs an HTTP check once: a 2xx answer is passing, 429 warning,
// anything else or no answer within its timeout critical, as Consul's HTTP
// checks judge.
func Probe(ctx context.Context, client *http.Client, c CheckSpec) (Status, string) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, c.Method, c.URL, nil)
	if err != nil {
		return Critical, err.Error()
	}
	resp, err := client.Do(req)
	if err != nil {
		return Critical, err.Error()
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	out := fmt.Sprintf("HTTP %s %s: %s", c.Method, c.URL, resp.Status)
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return Passing, out
	case resp.StatusCode == http.StatusTooManyRequests:
		return Warning, out
	}
	return Critical, out
}
