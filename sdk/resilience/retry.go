package resilience

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Defaults shared by Policy and TransportOptions.
const (
	DefaultMaxRetries = 2
	DefaultBaseDelay  = 50 * time.Millisecond
	DefaultMaxDelay   = 2 * time.Second
)

// Policy configures Retry.
type Policy struct {
	// MaxRetries is the number of retries after the first attempt.
	// 0 means DefaultMaxRetries; negative disables retries.
	MaxRetries int
	// BaseDelay is the backoff cap of the first retry; it doubles per retry.
	// 0 means DefaultBaseDelay.
	BaseDelay time.Duration
	// MaxDelay caps every backoff. 0 means DefaultMaxDelay.
	MaxDelay time.Duration
	// Retryable classifies an error. Nil retries every error except context
	// cancellation/expiry and ErrOpen (a rejecting breaker should be left
	// alone, not hammered).
	Retryable func(error) bool
	// Sleep waits d or until ctx is done; tests inject a recorder.
	// Nil means a timer-based sleep.
	Sleep func(ctx context.Context, d time.Duration) error
	// Rand returns a float in [0, 1) for jitter; tests inject a constant.
	// Nil means math/rand/v2.Float64.
	Rand func() float64
}

// backoff is the resolved retry schedule shared by Retry and Transport.
type backoff struct {
	maxRetries int
	base, max  time.Duration
	sleep      func(context.Context, time.Duration) error
	rand       func() float64
}

func newBackoff(maxRetries int, base, maxDelay time.Duration, sleep func(context.Context, time.Duration) error, rnd func() float64) backoff {
	b := backoff{maxRetries: maxRetries, base: base, max: maxDelay, sleep: sleep, rand: rnd}
	switch {
	case b.maxRetries == 0:
		b.maxRetries = DefaultMaxRetries
	case b.maxRetries < 0:
		b.maxRetries = 0
	}
	if b.base <= 0 {
		b.base = DefaultBaseDelay
	}
	if b.max <= 0 {
		b.max = DefaultMaxDelay
	}
	if b.sleep == nil {
		b.sleep = sleepCtx
	}
	if b.rand == nil {
		b.rand = rand.Float64
	}
	return b
}

// delay returns the wait before retry number retry (0-based) using "full
// jitter": uniform in [0, min(MaxDelay, BaseDelay·2^retry)). Full jitter
// spreads synchronized clients apart better than equal or no jitter.
func (b backoff) delay(retry int) time.Duration {
	ceiling := b.max
	if retry < 32 { // beyond that the shift overflows; the cap applies anyway
		if d := b.base << retry; d > 0 && d < ceiling {
			ceiling = d
		}
	}
	return time.Duration(b.rand() * float64(ceiling))
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func defaultRetryable(err error) bool {
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrOpen)
}

// Retry calls fn until it succeeds, returns a non-retryable error, the
// retries are exhausted, or ctx is done. It returns fn's last error; if ctx
// ends during a backoff, the returned error wraps both ctx's error and fn's
// last error.
func Retry(ctx context.Context, policy Policy, fn func(context.Context) error) error {
	b := newBackoff(policy.MaxRetries, policy.BaseDelay, policy.MaxDelay, policy.Sleep, policy.Rand)
	retryable := policy.Retryable
	if retryable == nil {
		retryable = defaultRetryable
	}
	for attempt := 0; ; attempt++ {
		err := fn(ctx)
		if err == nil || attempt >= b.maxRetries || !retryable(err) {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("retry abandoned: %w (last error: %w)", ctx.Err(), err)
		}
		if serr := b.sleep(ctx, b.delay(attempt)); serr != nil {
			return fmt.Errorf("retry abandoned: %w (last error: %w)", serr, err)
		}
	}
}
