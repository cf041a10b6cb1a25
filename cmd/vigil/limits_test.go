package main

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/vigil-observability/vigil/internal/loadgen"
)

// TestOverloadIsRetryableAndLosesNothing floods a server whose span queue
// holds little: requests are either acknowledged or refused with 429 and
// Retry-After, never failed with a 5xx, and everything acknowledged is stored.
func TestOverloadIsRetryableAndLosesNothing(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "vigil.yaml")
	if err := os.WriteFile(cfg, []byte("ingest:\n  max_queue_items: 600\n  max_batch_items: 500\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, t.TempDir(), "--config", cfg)
	client := &http.Client{Timeout: time.Minute}

	var (
		mu       sync.Mutex
		ackedIDs []pcommon.TraceID
		codes    = map[int]int{}
		noRetry  int
		wg       sync.WaitGroup
	)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := loadgen.New(uint64(100 + w))
			for range 15 {
				td, ids := g.Traces(60, 5, time.Now())
				err := loadgen.PostTraces(t.Context(), client, s.otlpHTTPURL, td)
				var se *loadgen.StatusError
				mu.Lock()
				switch {
				case err == nil:
					codes[200]++
					ackedIDs = append(ackedIDs, ids...)
				case errors.As(err, &se):
					codes[se.Code]++
					if se.RetryAfter == "" {
						noRetry++
					}
				default:
					codes[-1]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Logf("status codes under overload: %v", codes)
	for code, n := range codes {
		if code != 200 && code != 429 {
			t.Errorf("%d requests answered %d; overload must answer 200 or 429 only", n, code)
		}
	}
	if codes[429] == 0 {
		t.Errorf("no request was refused: the queue bound did not hold (codes %v)", codes)
	}
	if noRetry > 0 {
		t.Errorf("%d refusals without Retry-After", noRetry)
	}
	if code := s.getJSON(t, "/-/healthy", nil); code != http.StatusOK {
		t.Fatalf("server unhealthy after overload: %d", code)
	}
	for _, id := range ackedIDs {
		var tr struct {
			Data []struct {
				Spans []struct{} `json:"spans"`
			} `json:"data"`
		}
		if code := s.getJSON(t, "/api/traces/"+id.String(), &tr); code != http.StatusOK || len(tr.Data[0].Spans) != 5 {
			t.Fatalf("acknowledged trace %s missing after overload (HTTP %d)", id, code)
		}
	}
}

// TestBombAndPartialSuccessAtTheListener checks the limits on the real
// listener: a gzip bomb is refused with 413 and the next request is served;
// a batch with one malformed span id is accepted except for that span.
func TestBombAndPartialSuccessAtTheListener(t *testing.T) {
	s := startServer(t, t.TempDir())

	var bomb bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&bomb, gzip.BestCompression)
	zeros := make([]byte, 1<<20)
	for range 64 { // 64 MiB of zeros inflate past the 20 MiB default
		_, _ = zw.Write(zeros)
	}
	_ = zw.Close()
	req, _ := http.NewRequest(http.MethodPost, s.otlpHTTPURL+"/v1/traces", &bomb)
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("gzip bomb: HTTP %d, want 413", resp.StatusCode)
	}

	g := loadgen.New(7)
	td, ids := g.Traces(2, 3, time.Now())
	td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(1).SetSpanID(pcommon.SpanID{}) // invalid: all zero
	body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	resp, err = http.Post(s.otlpHTTPURL+"/v1/traces", "application/x-protobuf", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("partial batch: HTTP %d, want 200", resp.StatusCode)
	}
	er := ptraceotlp.NewExportResponse()
	if err := er.UnmarshalProto(raw); err != nil {
		t.Fatal(err)
	}
	if got := er.PartialSuccess().RejectedSpans(); got != 1 || er.PartialSuccess().ErrorMessage() == "" {
		t.Fatalf("partial success = %d rejected, message %q; want 1 and a reason", got, er.PartialSuccess().ErrorMessage())
	}
	var tr struct {
		Data []struct {
			Spans []struct{} `json:"spans"`
		} `json:"data"`
	}
	if code := s.getJSON(t, "/api/traces/"+ids[0].String(), &tr); code != http.StatusOK || len(tr.Data[0].Spans) != 2 {
		t.Errorf("trace with the rejected span: HTTP %d, want its 2 valid spans", code)
	}
	if code := s.getJSON(t, "/api/traces/"+ids[1].String(), &tr); code != http.StatusOK || len(tr.Data[0].Spans) != 3 {
		t.Errorf("the untouched trace: HTTP %d, want 3 spans", code)
	}
}
