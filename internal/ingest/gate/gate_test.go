package gate

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/ingest"
)

func TestWrap(t *testing.T) {
	for _, tc := range []struct {
		name           string
		closed         bool
		wantCode       int
		wantRetryAfter string
		wantReached    bool
	}{
		{name: "open", wantCode: http.StatusNoContent, wantReached: true},
		{name: "closed", closed: true, wantCode: http.StatusServiceUnavailable, wantRetryAfter: "3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := New(Options{RetryAfter: 2500 * time.Millisecond})
			if tc.closed {
				g.Close()
			}
			reached := false
			h := g.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				reached = true
				w.WriteHeader(http.StatusNoContent)
			}))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/v1/write", strings.NewReader("x")))
			if rec.Code != tc.wantCode || rec.Header().Get("Retry-After") != tc.wantRetryAfter || reached != tc.wantReached {
				t.Errorf("code %d, Retry-After %q, handler reached %v; want %d, %q, %v",
					rec.Code, rec.Header().Get("Retry-After"), reached, tc.wantCode, tc.wantRetryAfter, tc.wantReached)
			}
		})
	}
}

func TestConsumers(t *testing.T) {
	g := New(Options{})
	calls := 0
	traces := g.Traces(ingest.TracesConsumerFunc(func(context.Context, ptrace.Traces) error { calls++; return nil }))
	logs := g.Logs(ingest.LogsConsumerFunc(func(context.Context, plog.Logs) error { calls++; return nil }))
	metrics := g.Metrics(ingest.MetricsConsumerFunc(func(context.Context, pmetric.Metrics) error { calls++; return nil }))
	consume := map[string]func() error{
		"traces":  func() error { return traces.ConsumeTraces(context.Background(), ptrace.NewTraces()) },
		"logs":    func() error { return logs.ConsumeLogs(context.Background(), plog.NewLogs()) },
		"metrics": func() error { return metrics.ConsumeMetrics(context.Background(), pmetric.NewMetrics()) },
	}
	for _, tc := range []struct {
		name    string
		close   bool
		wantErr bool
	}{
		{name: "open"},
		{name: "closed", close: true, wantErr: true},
	} {
		if tc.close {
			g.Close()
		}
		for signal, f := range consume {
			calls = 0
			err := f()
			// Receivers answer ErrUnavailable as retryable (503,
			// UNAVAILABLE); the refusal must be one.
			refused := errors.Is(err, ErrClosed) && errors.Is(err, ingest.ErrUnavailable)
			if refused != tc.wantErr || (err == nil) != (calls == 1) || (tc.wantErr && calls != 0) {
				t.Errorf("%s, %s: err %v, next called %d times", tc.name, signal, err, calls)
			}
		}
	}
}
