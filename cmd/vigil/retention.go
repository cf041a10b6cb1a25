package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/vigil-observability/vigil/internal/storage"
)

// retentionOptions configure runRetention.
type retentionOptions struct {
	// Retainers are the stores to drop old partitions of, by name (for
	// the logs).
	Retainers map[string]storage.Retainer
	// Keep is how far back data is kept.
	Keep time.Duration
	// Every is the time between two rounds (an hour when zero): partitions
	// are days, so hourly is precise enough.
	Every time.Duration
	Now   func() time.Time // time.Now when nil
	// Rounded, when set, is called after each round (tests wait on it).
	Rounded func()
	Logger  *slog.Logger // discarded when nil
}

// runRetention is the retention of the stores that leave it to their
// caller (storage.Retainer): at once, then every opts.Every until ctx ends,
// each drops what lies before now - opts.Keep. A failed round is logged
// and retried at the next. Every node of a shared store may run it:
// dropping what another node dropped already is a no-op.
func runRetention(ctx context.Context, opts retentionOptions) {
	if opts.Every <= 0 {
		opts.Every = time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	t := time.NewTicker(opts.Every)
	defer t.Stop()
	for {
		before := opts.Now().Add(-opts.Keep)
		for name, r := range opts.Retainers {
			if n, err := r.DropBefore(ctx, before); err != nil {
				if ctx.Err() == nil {
					opts.Logger.Warn("retention", "store", name, "err", err)
				}
			} else if n > 0 {
				opts.Logger.Info("retention dropped partitions", "store", name, "partitions", n)
			}
		}
		if opts.Rounded != nil {
			opts.Rounded()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
