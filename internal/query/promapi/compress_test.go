package promapi

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
)

func TestPooledGzip(t *testing.T) {
	small := `{"status":"success"}`
	large := strings.Repeat(`{"metric":{"__name__":"x"}},`, 200)
	tests := []struct {
		name, accept, body, innerEncoding string
		wantGzip                          bool
		// innerAccept is the Accept-Encoding the wrapped handler sees.
		innerAccept string
	}{
		{name: "small answer stays plain", accept: "gzip", body: small},
		{name: "large answer compressed", accept: "gzip, deflate", body: large, wantGzip: true},
		{name: "quality parameter", accept: "gzip;q=0.9", body: large, wantGzip: true},
		{name: "deflate preferred: Prometheus's handler decides", accept: "deflate, gzip", body: large, innerAccept: "deflate, gzip"},
		{name: "no compression asked", accept: "", body: large},
		{name: "answer with its own encoding", accept: "gzip", body: large, innerEncoding: "snappy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen string
			h := pooledGzip(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seen = r.Header.Get("Accept-Encoding")
				if tt.innerEncoding != "" {
					w.Header().Set("Content-Encoding", tt.innerEncoding)
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusTeapot)
				// Two writes, the first below the threshold, as a
				// handler may write its answer in pieces.
				_, _ = io.WriteString(w, tt.body[:len(tt.body)/2])
				_, _ = io.WriteString(w, tt.body[len(tt.body)/2:])
			}))
			req := httptest.NewRequest(http.MethodGet, "/api/v1/query", nil)
			if tt.accept != "" {
				req.Header.Set("Accept-Encoding", tt.accept)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)

			if seen != tt.innerAccept {
				t.Errorf("handler saw Accept-Encoding %q, want %q", seen, tt.innerAccept)
			}
			if rec.Code != http.StatusTeapot {
				t.Errorf("status %d, want %d", rec.Code, http.StatusTeapot)
			}
			body := rec.Body.Bytes()
			enc := rec.Header().Get("Content-Encoding")
			if tt.wantGzip {
				if enc != "gzip" {
					t.Fatalf("Content-Encoding %q, want gzip", enc)
				}
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				if body, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
			} else if enc != tt.innerEncoding {
				t.Fatalf("Content-Encoding %q, want %q", enc, tt.innerEncoding)
			}
			if string(body) != tt.body {
				t.Errorf("body %.60q..., want %.60q...", body, tt.body)
			}
		})
	}
}

// TestPooledGzipReusesWriters sends several large answers in turn: a
// writer returned to the pool must start each answer afresh.
func TestPooledGzipReusesWriters(t *testing.T) {
	for i := range 5 {
		body := strings.Repeat(string(rune('a'+i)), 5000)
		h := pooledGzip(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, body)
		}))
		req := httptest.NewRequest(http.MethodGet, "/api/v1/query", nil)
		req.Header.Set("Accept-Encoding", "gzip")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		zr, err := gzip.NewReader(rec.Body)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != body {
			t.Fatalf("answer %d: got %d bytes starting %q", i, len(got), got[:min(len(got), 10)])
		}
	}
}

// TestQueryAnswerCompressed asks the real API for a large answer with
// gzip accepted, as Go's HTTP client does, and reads it back.
func TestQueryAnswerCompressed(t *testing.T) {
	h := newHandler(t, testOptions(t))
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, tc := range []struct {
		path     string
		wantGzip bool
	}{
		{qr("vigil_test_odd_values", tStart, tEnd, "10"), true},
		{q("1 + 1", tMid), false},
	} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+PathPrefix+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		body := raw
		if got := resp.Header.Get("Content-Encoding") == "gzip"; got != tc.wantGzip {
			t.Fatalf("%s: compressed %v, want %v (%d bytes)", tc.path, got, tc.wantGzip, len(raw))
		}
		if tc.wantGzip {
			zr, err := gzip.NewReader(bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			if body, err = io.ReadAll(zr); err != nil {
				t.Fatal(err)
			}
		}
		if resp.StatusCode != http.StatusOK || !bytes.HasPrefix(body, []byte(`{"status":"success"`)) {
			t.Fatalf("%s: %s", tc.path, describe(resp.StatusCode, body))
		}
	}
}
