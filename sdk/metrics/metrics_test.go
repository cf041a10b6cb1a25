package metrics

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

func TestMetricPrefix(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"checkout", "checkout"},
		{"Checkout-API", "checkout_api"},
		{"my.service:v2", "my_service_v2"},
		{"  payments  ", "payments"},
		{"9lives", "_9lives"},
		{"already_ok_1", "already_ok_1"},
		{"café", "caf_"},
		{"", "unknown_service"},
		{"---", "unknown_service"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := metricPrefix(tt.in); got != tt.want {
				t.Errorf("metricPrefix(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestBuildInfo(t *testing.T) {
	withVCS := func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{
			GoVersion: "go1.26.8",
			Main:      debug.Module{Path: "example.com/svc", Version: "v1.2.3"},
			Settings: []debug.BuildSetting{
				{Key: "vcs", Value: "git"},
				{Key: "vcs.revision", Value: "abc123"},
			},
		}, true
	}
	noInfo := func() (*debug.BuildInfo, bool) { return nil, false }

	tests := []struct {
		name string
		opts RegistryOptions
		read func() (*debug.BuildInfo, bool)
		want string
	}{
		{
			name: "from build info",
			opts: RegistryOptions{Service: "checkout-api"},
			read: withVCS,
			want: `
# HELP checkout_api_build_info Build information of the service; the value is always 1.
# TYPE checkout_api_build_info gauge
checkout_api_build_info{goversion="go1.26.8",revision="abc123",version="v1.2.3"} 1
`,
		},
		{
			name: "ldflags override",
			opts: RegistryOptions{Service: "checkout", Version: "v9.9.9", Revision: "deadbeef"},
			read: withVCS,
			want: `
# HELP checkout_build_info Build information of the service; the value is always 1.
# TYPE checkout_build_info gauge
checkout_build_info{goversion="go1.26.8",revision="deadbeef",version="v9.9.9"} 1
`,
		},
		{
			name: "no build info",
			opts: RegistryOptions{Service: "7eleven"},
			read: noInfo,
			want: `
# HELP _7eleven_build_info Build information of the service; the value is always 1.
# TYPE _7eleven_build_info gauge
_7eleven_build_info{goversion="` + runtime.Version() + `",revision="unknown",version="unknown"} 1
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewPedanticRegistry()
			reg.MustRegister(newBuildInfo(tt.opts, tt.read))
			if err := testutil.GatherAndCompare(reg, strings.NewReader(tt.want)); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestNewRegistryCollectors(t *testing.T) {
	reg := NewRegistry(RegistryOptions{Service: "svc", Version: "v1.0.0"})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	names := make(map[string]*dto.MetricFamily, len(mfs))
	for _, mf := range mfs {
		names[mf.GetName()] = mf
	}
	for _, want := range []string{
		"go_goroutines",
		"go_memstats_heap_alloc_bytes",
		"go_gc_duration_seconds",
		"process_cpu_seconds_total",
		"process_resident_memory_bytes",
		"process_open_fds",
		"svc_build_info",
	} {
		if _, ok := names[want]; !ok {
			t.Errorf("series %s missing from registry", want)
		}
	}
	bi := names["svc_build_info"]
	if bi == nil {
		return
	}
	labels := map[string]string{}
	for _, lp := range bi.GetMetric()[0].GetLabel() {
		labels[lp.GetName()] = lp.GetValue()
	}
	if labels["version"] != "v1.0.0" {
		t.Errorf("version label = %q, want v1.0.0", labels["version"])
	}
	if labels["goversion"] == "" {
		t.Error("goversion label is empty")
	}
	if got := bi.GetMetric()[0].GetGauge().GetValue(); got != 1 {
		t.Errorf("build_info value = %v, want 1", got)
	}
}

func TestHandlerFormats(t *testing.T) {
	reg := NewRegistry(RegistryOptions{Service: "svc"})
	h := Handler(reg)

	tests := []struct {
		name        string
		accept      string
		wantType    string
		wantSnippet string
	}{
		{"text", "", "text/plain", "svc_build_info{"},
		{"openmetrics", "application/openmetrics-text;version=1.0.0", "application/openmetrics-text", "# EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
			if tt.accept != "" {
				req.Header.Set("Accept", tt.accept)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				t.Fatalf("status = %d", rec.Code)
			}
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, tt.wantType) {
				t.Errorf("Content-Type = %q, want prefix %q", ct, tt.wantType)
			}
			body, _ := io.ReadAll(rec.Body)
			if !bytes.Contains(body, []byte(tt.wantSnippet)) {
				t.Errorf("body lacks %q", tt.wantSnippet)
			}
			if !bytes.Contains(body, []byte("go_goroutines")) {
				t.Error("body lacks go_goroutines")
			}
		})
	}
}

// failingGatherer returns one good family together with an error, the way a
// registry reports a collector that failed during a scrape.
type failingGatherer struct{}

var errCollector = errors.New("collector exploded")

func (failingGatherer) Gather() ([]*dto.MetricFamily, error) {
	name, help, v := "ok_total", "ok", 1.0
	typ := dto.MetricType_COUNTER
	return []*dto.MetricFamily{{
		Name: &name, Help: &help, Type: &typ,
		Metric: []*dto.Metric{{Counter: &dto.Counter{Value: &v}}},
	}}, errCollector
}

func TestHandlerLogsGatherErrors(t *testing.T) {
	var logs bytes.Buffer
	h := HandlerWithOptions(failingGatherer{}, HandlerOptions{
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))

	if rec.Code != http.StatusOK {
		t.Errorf("status = %d, want 200 (ContinueOnError serves partial results)", rec.Code)
	}
	if !strings.Contains(rec.Body.String(), "ok_total 1") {
		t.Errorf("partial result missing from body: %q", rec.Body.String())
	}
	if !strings.Contains(logs.String(), errCollector.Error()) || !strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("gather error not logged at error level: %q", logs.String())
	}
}
