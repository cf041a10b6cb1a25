package profilescrape

import (
	"errors"
	"io"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/vigil-observability/vigil/internal/goldentest"
)

type fixedTargets []TargetStatus

func (f fixedTargets) Targets() []TargetStatus { return f }

func TestTargetsAPI(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ts := fixedTargets{
		{
			Job: "shop", Service: "shop", URL: "http://10.0.0.1:6060",
			Labels: map[string]string{"instance": "10.0.0.1:6060", "job": "shop", "env": "prod"},
			Profiles: []ProfileStatus{
				{Kind: "memory", URL: "http://10.0.0.1:6060/debug/pprof/allocs", LastScrape: at, Duration: 20 * time.Millisecond},
				{Kind: "cpu", URL: "http://10.0.0.1:6060/debug/pprof/profile?seconds=12", LastScrape: at.Add(time.Second), Duration: 12 * time.Second},
			},
		},
		{
			Job: "shop", Service: "shop", URL: "http://10.0.0.2:6060",
			Labels: map[string]string{"instance": "10.0.0.2:6060", "job": "shop"},
			Profiles: []ProfileStatus{
				{Kind: "memory", URL: "http://10.0.0.2:6060/debug/pprof/allocs", LastScrape: at, Duration: 5 * time.Millisecond,
					Err: errors.New("server returned HTTP status 404 Not Found")},
				{Kind: "cpu", URL: "http://10.0.0.2:6060/debug/pprof/profile?seconds=12"},
			},
		},
		{
			Job: "payments", Service: "payments", URL: "https://10.0.0.3:6060",
			Labels: map[string]string{"instance": "10.0.0.3:6060", "job": "payments"},
			Profiles: []ProfileStatus{
				{Kind: "goroutine", URL: "https://10.0.0.3:6060/debug/pprof/goroutine"},
			},
		},
	}
	rec := httptest.NewRecorder()
	Handler(ts).ServeHTTP(rec, httptest.NewRequest("GET", TargetsPath, nil))
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	body, _ := io.ReadAll(rec.Body)
	goldentest.CompareJSON(t, "targets.json", body)
}

func TestTargetsAPIEmpty(t *testing.T) {
	rec := httptest.NewRecorder()
	Handler(fixedTargets(nil)).ServeHTTP(rec, httptest.NewRequest("GET", TargetsPath, nil))
	if got, want := rec.Body.String(), `{"status":"success","data":{"activeTargets":[]}}`+"\n"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
