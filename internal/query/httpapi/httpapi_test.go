package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/vigil-observability/vigil/internal/storage"
)

func TestReadFailure(t *testing.T) {
	unexpected := Failure{Code: http.StatusInternalServerError, Msg: "internal error", Level: slog.LevelError}
	live := context.Background()
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name       string
		ctx        context.Context
		err        error
		code       int
		msg        string
		retryAfter string
		level      slog.Level
	}{
		{"query the store refuses", live, fmt.Errorf("find: %w: bad tag", storage.ErrInvalidQuery), http.StatusBadRequest, "find: storage: invalid query: bad tag", "", slog.LevelDebug},
		{"refused even when the client left", gone, storage.ErrInvalidQuery, http.StatusBadRequest, storage.ErrInvalidQuery.Error(), "", slog.LevelDebug},
		{"client went away", gone, errors.New("interrupted"), http.StatusServiceUnavailable, "request cancelled", "", slog.LevelDebug},
		{"store unavailable", live, fmt.Errorf("read: %w", storage.ErrUnavailable), http.StatusServiceUnavailable, "storage unavailable, retry later", "1", slog.LevelWarn},
		{"store closed", live, storage.ErrClosed, http.StatusServiceUnavailable, "storage unavailable, retry later", "1", slog.LevelWarn},
		{"anything else is the API's to say", live, errors.New("disk on fire"), http.StatusInternalServerError, "internal error", "", slog.LevelError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := ReadFailure(tc.ctx, tc.err, unexpected)
			if f.Code != tc.code || f.Msg != tc.msg || f.RetryAfter != tc.retryAfter || f.Level != tc.level {
				t.Errorf("ReadFailure = %+v, want code %d msg %q Retry-After %q level %v", f, tc.code, tc.msg, tc.retryAfter, tc.level)
			}
			rec := httptest.NewRecorder()
			f.Write(rec, func(w http.ResponseWriter, code int, msg string) {
				w.WriteHeader(code)
				_, _ = w.Write([]byte(msg))
			})
			if rec.Code != tc.code || rec.Body.String() != tc.msg || rec.Header().Get("Retry-After") != tc.retryAfter {
				t.Errorf("written: HTTP %d %q Retry-After %q", rec.Code, rec.Body, rec.Header().Get("Retry-After"))
			}
		})
	}
}

func TestWriteJSON(t *testing.T) {
	fallback := []byte(`{"error":"encoding"}` + "\n")
	for _, tc := range []struct {
		name     string
		code     int
		v        any
		wantCode int
		wantBody string
		wantErr  bool
	}{
		{"encodes", http.StatusOK, map[string]int{"a": 1}, http.StatusOK, `{"a":1}` + "\n", false},
		{"keeps the code", http.StatusNotFound, []string{}, http.StatusNotFound, "[]\n", false},
		// NaN has no JSON form: nothing of the answer may be written
		// before the fallback.
		{"unencodable", http.StatusOK, map[string]float64{"a": 1, "b": math.NaN()}, http.StatusInternalServerError, string(fallback), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			code, err := WriteJSON(rec, tc.code, tc.v, fallback)
			if code != tc.wantCode || rec.Code != tc.wantCode || rec.Body.String() != tc.wantBody || (err != nil) != tc.wantErr {
				t.Errorf("WriteJSON: returned %d, %v; wrote HTTP %d %q; want %d %q (error %v)", code, err, rec.Code, rec.Body, tc.wantCode, tc.wantBody, tc.wantErr)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
}

func TestPrometheusError(t *testing.T) {
	for code, want := range map[int]string{
		http.StatusBadRequest:         `{"error":"no","errorType":"bad_data","status":"error"}` + "\n",
		http.StatusServiceUnavailable: `{"error":"no","errorType":"unavailable","status":"error"}` + "\n",
	} {
		rec := httptest.NewRecorder()
		PrometheusError(rec, code, "no")
		if rec.Code != code || rec.Body.String() != want {
			t.Errorf("PrometheusError(%d): HTTP %d %s, want %s", code, rec.Code, rec.Body, want)
		}
	}
}

// Routes answer other methods in the API's shape, GET reaches the API, and
// Mount mounts every route.
func TestMountAndMethodNotAllowed(t *testing.T) {
	routes := []string{"/api/a", "/api/b/{id}"}
	api := http.NewServeMux()
	for _, r := range routes {
		api.HandleFunc("GET "+r, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	}
	MethodNotAllowed(api, routes, func(w http.ResponseWriter, code int, msg string) {
		w.WriteHeader(code)
		_, _ = w.Write([]byte("shaped: " + msg))
	})
	outer := http.NewServeMux()
	Mount(outer, routes, api)
	for _, tc := range []struct {
		method, path string
		code         int
		body, allow  string
	}{
		{http.MethodGet, "/api/a", http.StatusOK, "ok", ""},
		{http.MethodGet, "/api/b/7", http.StatusOK, "ok", ""},
		{http.MethodPost, "/api/a", http.StatusMethodNotAllowed, "shaped: method not allowed; use GET", "GET, HEAD"},
		{http.MethodDelete, "/api/b/7", http.StatusMethodNotAllowed, "shaped: method not allowed; use GET", "GET, HEAD"},
		{http.MethodGet, "/api/c", http.StatusNotFound, "404 page not found\n", ""},
	} {
		rec := httptest.NewRecorder()
		outer.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), tc.method, tc.path, nil))
		if rec.Code != tc.code || rec.Body.String() != tc.body || rec.Header().Get("Allow") != tc.allow {
			t.Errorf("%s %s: HTTP %d %q Allow %q, want %d %q Allow %q", tc.method, tc.path, rec.Code, rec.Body, rec.Header().Get("Allow"), tc.code, tc.body, tc.allow)
		}
	}
}
