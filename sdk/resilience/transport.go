package resilience

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// TransportOptions configures Transport.
type TransportOptions struct {
	// Timeout bounds each attempt, from sending the request until the
	// response body is closed. It is applied through the request context
	// unless that context already has an earlier deadline. 0 means no
	// per-attempt timeout.
	Timeout time.Duration
	// MaxRetries is the number of retries after the first attempt.
	// 0 means DefaultMaxRetries (2); negative disables retries.
	MaxRetries int
	// BaseDelay is the backoff cap of the first retry, doubling per retry.
	// 0 means DefaultBaseDelay (50ms).
	BaseDelay time.Duration
	// MaxDelay caps every backoff and every honoured Retry-After.
	// 0 means DefaultMaxDelay (2s).
	MaxDelay time.Duration
	// Breaker, when set, returns the breaker guarding a host (req.URL.Host,
	// i.e. host[:port]); nil from the func means "no breaker for this host".
	// Network errors and 5xx responses count as failures; a rejected attempt
	// fails with an error wrapping ErrOpen and is not retried.
	Breaker func(host string) *Breaker
	// Sleep waits d or until ctx is done; tests inject a recorder.
	// Nil means a timer-based sleep.
	Sleep func(ctx context.Context, d time.Duration) error
	// Rand returns a float in [0, 1) for jitter; tests inject a constant.
	// Nil means math/rand/v2.Float64.
	Rand func() float64
}

// Transport wraps base (nil means http.DefaultTransport) with per-attempt
// timeouts, retries and optional per-host circuit breaking.
//
// A request is retried only when repeating it is safe: its method is
// idempotent (GET, HEAD, OPTIONS, PUT, DELETE, TRACE) or it carries an
// Idempotency-Key header, and, if it has a body, req.GetBody is set so the
// body can be replayed. Only transient outcomes are retried: network errors,
// 502, 503, 504 and 429. Waits use exponential backoff with full jitter; a
// Retry-After header on a 429 or 503 is honoured instead, capped at MaxDelay.
// Nothing is retried once the request's context is done. When retries are
// exhausted the last response (or error) is returned unchanged.
func Transport(base http.RoundTripper, opts TransportOptions) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{
		base:    base,
		timeout: opts.Timeout,
		breaker: opts.Breaker,
		backoff: newBackoff(opts.MaxRetries, opts.BaseDelay, opts.MaxDelay, opts.Sleep, opts.Rand),
	}
}

type transport struct {
	base    http.RoundTripper
	timeout time.Duration
	breaker func(host string) *Breaker
	backoff backoff
}

func hasBody(req *http.Request) bool {
	return req.Body != nil && req.Body != http.NoBody
}

// retryAllowed reports whether replaying req is safe at all.
func retryAllowed(req *http.Request) bool {
	if hasBody(req) && req.GetBody == nil {
		return false
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete, http.MethodTrace, "":
		return true
	}
	return req.Header.Get("Idempotency-Key") != ""
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	canRetry := retryAllowed(req)
	for attempt := 0; ; attempt++ {
		r := req
		if attempt > 0 && hasBody(req) {
			body, err := req.GetBody()
			if err != nil {
				return nil, fmt.Errorf("resilience: replaying request body: %w", err)
			}
			r = req.Clone(ctx)
			r.Body = body
		}
		resp, err := t.attempt(r)
		if !canRetry || attempt >= t.backoff.maxRetries || ctx.Err() != nil {
			return resp, err
		}
		wait, retry := t.retryDecision(resp, err, attempt)
		if !retry {
			return resp, err
		}
		if resp != nil {
			// Drain a little so the connection can be reused, then release it.
			_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
			_ = resp.Body.Close()
		}
		if serr := t.backoff.sleep(ctx, wait); serr != nil {
			last := err
			if last == nil {
				last = fmt.Errorf("status %s", resp.Status)
			}
			return nil, fmt.Errorf("resilience: retry abandoned: %w (last outcome: %w)", serr, last)
		}
	}
}

// retryDecision classifies one attempt's outcome and says how long to wait.
func (t *transport) retryDecision(resp *http.Response, err error, attempt int) (time.Duration, bool) {
	if err != nil {
		if errors.Is(err, ErrOpen) {
			return 0, false
		}
		return t.backoff.delay(attempt), true
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			return min(d, t.backoff.max), true
		}
		return t.backoff.delay(attempt), true
	case http.StatusBadGateway, http.StatusGatewayTimeout:
		return t.backoff.delay(attempt), true
	}
	return 0, false
}

// parseRetryAfter accepts both forms of RFC 9110 Retry-After: delay-seconds
// and an HTTP-date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return 0, false
		}
		return time.Duration(secs) * time.Second, true
	}
	if at, err := http.ParseTime(v); err == nil {
		return max(at.Sub(now), 0), true
	}
	return 0, false
}

// attempt performs one round trip under the per-attempt timeout and breaker.
func (t *transport) attempt(req *http.Request) (*http.Response, error) {
	parent := req.Context()
	cancel := context.CancelFunc(func() {})
	if t.timeout > 0 {
		if dl, ok := parent.Deadline(); !ok || time.Until(dl) > t.timeout {
			var ctx context.Context
			ctx, cancel = context.WithTimeout(parent, t.timeout)
			req = req.WithContext(ctx)
		}
	}

	var done func(context.Context, error)
	if t.breaker != nil {
		if b := t.breaker(req.URL.Host); b != nil {
			var err error
			if done, err = b.allow(req.Context()); err != nil {
				cancel()
				// RoundTrippers must close the body even when failing early.
				if req.Body != nil {
					_ = req.Body.Close()
				}
				return nil, err
			}
		}
	}

	resp, err := t.base.RoundTrip(req)
	if err != nil {
		cancel()
		if done != nil {
			if parent.Err() != nil {
				done(parent, errExcluded) // the caller gave up; not the host's fault
			} else {
				done(parent, err)
			}
		}
		return nil, err
	}
	if done != nil {
		if resp.StatusCode >= 500 {
			done(parent, fmt.Errorf("%w: status %d", errFailure, resp.StatusCode))
		} else {
			done(parent, nil)
		}
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// cancelOnClose keeps the attempt's timeout context alive while the caller
// reads the body, and releases it on Close.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}
