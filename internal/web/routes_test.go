package web

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
)

func TestRoutesListsEveryMount(t *testing.T) {
	s := New(Options{})
	s.Handle("POST /api/v1/write", http.NotFoundHandler())
	s.MountPprof()
	got := s.Routes()
	for _, want := range []string{"/", "GET /-/healthy", "GET /-/ready", "GET /-/routes", "POST /api/v1/write", "GET /debug/pprof/", "POST /debug/pprof/symbol"} {
		if !slices.Contains(got, want) {
			t.Errorf("Routes() lacks %q: %v", want, got)
		}
	}
	if !slices.IsSorted(got) {
		t.Errorf("Routes() not sorted: %v", got)
	}

	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/-/routes", nil))
	var body struct{ Data []string }
	if err := json.NewDecoder(rec.Body).Decode(&body); err != nil || rec.Code != http.StatusOK {
		t.Fatalf("GET /-/routes: %d, %v", rec.Code, err)
	}
	if !slices.Equal(body.Data, got) {
		t.Errorf("GET /-/routes = %v, want %v", body.Data, got)
	}

	rec = httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/debug/pprof/cmdline", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("pprof cmdline: %d, want 200 once mounted", rec.Code)
	}
}

func TestPprofOffUnlessMounted(t *testing.T) {
	s := New(Options{})
	s.SetReady()
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/debug/pprof/", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("GET /debug/pprof/ without MountPprof: %d, want 404", rec.Code)
	}
}
