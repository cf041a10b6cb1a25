package auth

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// readSpy records whether a request body was read at all.
type readSpy struct {
	r    io.Reader
	read bool
}

func (s *readSpy) Read(p []byte) (int, error) { s.read = true; return s.r.Read(p) }

// Credentials are checked before anything reads the body of an ingest
// request: an unauthenticated client cannot make the server read, inflate
// or decode a body.
func TestIngestBodyNotReadWithoutCredentials(t *testing.T) {
	a := testAuthenticator(t)
	h := a.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	for _, tc := range []struct {
		name, path, header string
		want               int
	}{
		{"OTLP/HTTP without credentials", "/v1/traces", "", http.StatusUnauthorized},
		{"remote_write with a wrong token", "/api/v1/write", "Bearer nope", http.StatusUnauthorized},
		{"OTLP/HTTP with a read credential", "/v1/logs", basicHeader("alice", "s3cret"), http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spy := &readSpy{r: strings.NewReader(strings.Repeat("x", 1<<20))}
			req := httptest.NewRequest(http.MethodPost, tc.path, spy)
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != tc.want {
				t.Errorf("HTTP %d, want %d", w.Code, tc.want)
			}
			if spy.read {
				t.Error("the body was read before the request was authorized")
			}
		})
	}
}
