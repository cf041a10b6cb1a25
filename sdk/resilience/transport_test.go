package resilience

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func response(status int, header http.Header) *http.Response {
	if header == nil {
		header = http.Header{}
	}
	return &http.Response{StatusCode: status, Status: http.StatusText(status), Header: header, Body: io.NopCloser(strings.NewReader("body"))}
}

var errNetwork = errors.New("connection reset by peer")

func TestTransportRetryDecisions(t *testing.T) {
	tests := []struct {
		name      string
		method    string
		body      string // non-empty: request has a body
		noGetBody bool   // strip req.GetBody
		idemKey   bool
		status    int   // returned on every attempt unless err set
		err       error // network error on every attempt
		wantCalls int
	}{
		{name: "GET 503 retried", method: "GET", status: 503, wantCalls: 3},
		{name: "GET 502 retried", method: "GET", status: 502, wantCalls: 3},
		{name: "GET 504 retried", method: "GET", status: 504, wantCalls: 3},
		{name: "GET 429 retried", method: "GET", status: 429, wantCalls: 3},
		{name: "GET network error retried", method: "GET", err: errNetwork, wantCalls: 3},
		{name: "GET 500 not retried", method: "GET", status: 500, wantCalls: 1},
		{name: "GET 404 not retried", method: "GET", status: 404, wantCalls: 1},
		{name: "GET 200 not retried", method: "GET", status: 200, wantCalls: 1},
		{name: "HEAD retried", method: "HEAD", status: 503, wantCalls: 3},
		{name: "OPTIONS retried", method: "OPTIONS", status: 503, wantCalls: 3},
		{name: "TRACE retried", method: "TRACE", status: 503, wantCalls: 3},
		{name: "DELETE retried", method: "DELETE", status: 503, wantCalls: 3},
		{name: "PUT with replayable body retried", method: "PUT", body: "x", status: 503, wantCalls: 3},
		{name: "PUT without GetBody not retried", method: "PUT", body: "x", noGetBody: true, status: 503, wantCalls: 1},
		{name: "POST not retried", method: "POST", body: "x", status: 503, wantCalls: 1},
		{name: "POST network error not retried", method: "POST", err: errNetwork, wantCalls: 1},
		{name: "PATCH not retried", method: "PATCH", status: 503, wantCalls: 1},
		{name: "POST with Idempotency-Key retried", method: "POST", body: "x", idemKey: true, status: 503, wantCalls: 3},
		{name: "POST with Idempotency-Key without GetBody not retried", method: "POST", body: "x", idemKey: true, noGetBody: true, status: 503, wantCalls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			var bodies []string
			base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
				calls.Add(1)
				if r.Body != nil {
					b, _ := io.ReadAll(r.Body)
					_ = r.Body.Close()
					bodies = append(bodies, string(b))
				}
				if tt.err != nil {
					return nil, tt.err
				}
				return response(tt.status, nil), nil
			})
			rec := &sleepRecorder{}
			rt := Transport(base, TransportOptions{Sleep: rec.sleep, Rand: func() float64 { return 0.5 }})
			var body io.Reader
			if tt.body != "" {
				body = bytes.NewBufferString(tt.body)
			}
			req := httptest.NewRequestWithContext(t.Context(), tt.method, "http://svc.example/x", body)
			if tt.body != "" && !tt.noGetBody {
				req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(tt.body)), nil }
			}
			if tt.idemKey {
				req.Header.Set("Idempotency-Key", "k-1")
			}
			resp, err := rt.RoundTrip(req)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				_ = resp.Body.Close()
				if resp.StatusCode != tt.status {
					t.Errorf("status = %d, want %d (last response returned unchanged)", resp.StatusCode, tt.status)
				}
			}
			if got := int(calls.Load()); got != tt.wantCalls {
				t.Errorf("calls = %d, want %d", got, tt.wantCalls)
			}
			if got := len(rec.got()); got != tt.wantCalls-1 {
				t.Errorf("sleeps = %d, want %d", got, tt.wantCalls-1)
			}
			for i, b := range bodies {
				if b != tt.body {
					t.Errorf("attempt %d body = %q, want %q (body must be replayed)", i, b, tt.body)
				}
			}
		})
	}
}

func TestTransportSucceedsAfterTransientFailures(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "hello")
	}))
	t.Cleanup(srv.Close)
	rec := &sleepRecorder{}
	client := &http.Client{Transport: Transport(srv.Client().Transport, TransportOptions{Timeout: time.Minute, Sleep: rec.sleep})}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL, nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// Reading after RoundTrip returned proves the per-attempt timeout
	// context stays alive until Close.
	b, err := io.ReadAll(resp.Body)
	if err != nil || string(b) != "hello" || resp.StatusCode != 200 {
		t.Fatalf("got %d %q %v, want 200 hello", resp.StatusCode, b, err)
	}
	if calls.Load() != 3 {
		t.Fatalf("server calls = %d, want 3", calls.Load())
	}
}

func TestBackoffBounds(t *testing.T) {
	tests := []struct {
		retry   int
		ceiling time.Duration
	}{
		{0, 50 * time.Millisecond},
		{1, 100 * time.Millisecond},
		{2, 200 * time.Millisecond},
		{5, 1600 * time.Millisecond},
		{6, 2 * time.Second}, // 3.2s capped at MaxDelay
		{40, 2 * time.Second},
		{100, 2 * time.Second}, // shift overflow guarded
	}
	for _, tt := range tests {
		for _, r := range []float64{0, 0.5, 0.999999} {
			b := newBackoff(0, 0, 0, nil, func() float64 { return r })
			got := b.delay(tt.retry)
			want := time.Duration(r * float64(tt.ceiling))
			if got != want || got < 0 || got >= tt.ceiling {
				t.Errorf("delay(retry=%d, rand=%v) = %v, want %v in [0,%v)", tt.retry, r, got, want, tt.ceiling)
			}
		}
	}
}

func TestTransportBackoffSchedule(t *testing.T) {
	base := roundTripFunc(func(*http.Request) (*http.Response, error) { return response(503, nil), nil })
	rec := &sleepRecorder{}
	rt := Transport(base, TransportOptions{MaxRetries: 3, BaseDelay: 10 * time.Millisecond, MaxDelay: 25 * time.Millisecond, Sleep: rec.sleep, Rand: func() float64 { return 0.5 }})
	resp, err := rt.RoundTrip(httptest.NewRequestWithContext(t.Context(), "GET", "http://h/", nil))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	want := []time.Duration{5 * time.Millisecond, 10 * time.Millisecond, 12500 * time.Microsecond}
	got := rec.got()
	if len(got) != len(want) {
		t.Fatalf("delays = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("delay[%d] = %v, want %v", i, got[i], want[i])
		}
	}
}

func TestTransportRetryAfter(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		retryAfter string
		want       time.Duration
	}{
		{"429 seconds", 429, "1", time.Second},
		{"429 capped at MaxDelay", 429, "120", 2 * time.Second},
		{"429 zero", 429, "0", 0},
		{"429 HTTP date in the past", 429, "Mon, 02 Jan 2006 15:04:05 GMT", 0},
		{"429 HTTP date far future capped", 429, time.Now().Add(time.Hour).UTC().Format(http.TimeFormat), 2 * time.Second},
		{"503 seconds", 503, "1", time.Second},
		{"429 garbage falls back to jittered backoff", 429, "soon", 25 * time.Millisecond},
		{"502 ignores Retry-After", 502, "1", 25 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			base := roundTripFunc(func(*http.Request) (*http.Response, error) {
				calls++
				if calls == 1 {
					return response(tt.status, http.Header{"Retry-After": {tt.retryAfter}}), nil
				}
				return response(200, nil), nil
			})
			rec := &sleepRecorder{}
			rt := Transport(base, TransportOptions{Sleep: rec.sleep, Rand: func() float64 { return 0.5 }})
			resp, err := rt.RoundTrip(httptest.NewRequestWithContext(t.Context(), "GET", "http://h/", nil))
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			if got := rec.got(); len(got) != 1 || got[0] != tt.want {
				t.Fatalf("delays = %v, want [%v]", got, tt.want)
			}
		})
	}
}

func TestTransportNoRetryAfterContextCancel(t *testing.T) {
	t.Run("cancelled during attempt", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		calls := 0
		base := roundTripFunc(func(*http.Request) (*http.Response, error) {
			calls++
			cancel()
			return response(503, nil), nil
		})
		rec := &sleepRecorder{}
		resp, err := Transport(base, TransportOptions{Sleep: rec.sleep}).RoundTrip(httptest.NewRequestWithContext(ctx, "GET", "http://h/", nil))
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if calls != 1 || len(rec.got()) != 0 {
			t.Fatalf("calls=%d sleeps=%d, want 1 and 0", calls, len(rec.got()))
		}
	})
	t.Run("cancelled during backoff", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		calls := 0
		base := roundTripFunc(func(*http.Request) (*http.Response, error) {
			calls++
			return nil, errNetwork
		})
		sleep := func(ctx context.Context, _ time.Duration) error { cancel(); return ctx.Err() }
		_, err := Transport(base, TransportOptions{Sleep: sleep}).RoundTrip(httptest.NewRequestWithContext(ctx, "GET", "http://h/", nil))
		if !errors.Is(err, context.Canceled) || !errors.Is(err, errNetwork) {
			t.Fatalf("err = %v, want context.Canceled wrapping the last error", err)
		}
		if calls != 1 {
			t.Fatalf("calls = %d, want 1", calls)
		}
	})
}

func TestTransportTimeout(t *testing.T) {
	far := time.Now().Add(time.Hour)
	tests := []struct {
		name           string
		timeout        time.Duration
		parentDeadline time.Time
		wantParent     bool // base sees exactly the parent's deadline
	}{
		{"timeout applied", time.Minute, time.Time{}, false},
		{"earlier parent deadline kept", 2 * time.Hour, far, true},
		{"shorter timeout wins", time.Minute, far, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			if !tt.parentDeadline.IsZero() {
				var cancel context.CancelFunc
				ctx, cancel = context.WithDeadline(ctx, tt.parentDeadline)
				defer cancel()
			}
			var seen time.Time
			var hasDeadline bool
			base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
				seen, hasDeadline = r.Context().Deadline()
				return response(200, nil), nil
			})
			resp, err := Transport(base, TransportOptions{Timeout: tt.timeout}).RoundTrip(httptest.NewRequestWithContext(ctx, "GET", "http://h/", nil))
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			if !hasDeadline {
				t.Fatal("attempt had no deadline")
			}
			if got := seen.Equal(tt.parentDeadline); got != tt.wantParent {
				t.Fatalf("attempt deadline %v, parent %v: equal=%v want %v", seen, tt.parentDeadline, got, tt.wantParent)
			}
		})
	}

	t.Run("hung attempt times out and is retried", func(t *testing.T) {
		calls := 0
		base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			calls++
			<-r.Context().Done()
			return nil, r.Context().Err()
		})
		rec := &sleepRecorder{}
		_, err := Transport(base, TransportOptions{Timeout: time.Millisecond, MaxRetries: 1, Sleep: rec.sleep}).RoundTrip(httptest.NewRequestWithContext(t.Context(), "GET", "http://h/", nil))
		if !errors.Is(err, context.DeadlineExceeded) || calls != 2 {
			t.Fatalf("err=%v calls=%d, want deadline exceeded after 2 calls", err, calls)
		}
	})
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"", 0, false},
		{"3", 3 * time.Second, true},
		{"-1", 0, false},
		{"x", 0, false},
		{now.Add(10 * time.Second).Format(http.TimeFormat), 10 * time.Second, true},
		{now.Add(-10 * time.Second).Format(http.TimeFormat), 0, true},
	}
	for _, tt := range tests {
		got, ok := parseRetryAfter(tt.in, now)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("parseRetryAfter(%q) = %v,%v want %v,%v", tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
}

func BenchmarkTransport(b *testing.B) {
	base := roundTripFunc(func(*http.Request) (*http.Response, error) { return response(200, nil), nil })
	rt := Transport(base, TransportOptions{Timeout: time.Second})
	req := httptest.NewRequest("GET", "http://h/", nil)
	b.ReportAllocs()
	for b.Loop() {
		resp, _ := rt.RoundTrip(req)
		_ = resp.Body.Close()
	}
}
