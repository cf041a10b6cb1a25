package vigil

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/vigil-observability/vigil/sdk/configcentre"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

func TestServiceConfig(t *testing.T) {
	var mu sync.Mutex
	var first *http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if first == nil {
			first = r
		}
		mu.Unlock()
		if r.URL.Path != "/api/v1/config/shop/payment/settings" {
			http.NotFound(w, r)
			return
		}
		if r.URL.Query().Has("md5") { // the long poll: nothing changes
			select {
			case <-time.After(100 * time.Millisecond):
			case <-r.Context().Done():
			}
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"success","data":{"content":"timeout: 5s\n","content_type":"yaml","version":3,"md5":"5d1f1e3d0d3b5b3c0a4e2b8f8c1c9e0a","gray":true}}`)
	}))
	defer srv.Close()

	env := map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20ingest-token,x-other=1"}
	var logs syncBuffer
	svc, err := Start(t.Context(), Config{
		ServiceName: "shop-payment", ServiceVersion: "1.4.0", Endpoint: "127.0.0.1:1", LogOutput: &logs,
		ResourceAttributes: map[string]string{"zone": "eu-1"},
		ConfigCentre:       ConfigCentre{URL: srv.URL, Instance: "pod-a", CacheDir: t.TempDir()},
		getenv:             func(k string) string { return env[k] },
	})
	if err != nil {
		t.Fatal(err)
	}
	v, err := svc.Config("shop", "payment", "settings")
	if err != nil {
		t.Fatal(err)
	}
	var settings struct {
		Timeout time.Duration `yaml:"timeout"`
	}
	if err := v.Decode(&settings); err != nil || settings.Timeout != 5*time.Second {
		t.Fatalf("Decode = %+v, %v", settings, err)
	}

	mu.Lock()
	q, auth := first.URL.Query(), first.Header.Get("Authorization")
	mu.Unlock()
	if auth != "Bearer ingest-token" {
		t.Errorf("Authorization = %q, want the OTLP headers' token", auth)
	}
	for k, want := range map[string]string{"instance": "pod-a", "label.service.name": "shop-payment", "label.service.version": "1.4.0", "label.zone": "eu-1"} {
		if got := q.Get(k); got != want {
			t.Errorf("query %s = %q, want %q", k, got, want)
		}
	}
	if q.Has("label.process.pid") {
		t.Error("process attributes were sent as labels")
	}

	if err := testutil.GatherAndCompare(svc.Registry, strings.NewReader(`
# HELP vigil_config_applied_info The configuration version each watched item applies (1), and whether it is the item's gray or formal version.
# TYPE vigil_config_applied_info gauge
vigil_config_applied_info{cohort="gray",item="shop/payment/settings",version="3"} 1
`), "vigil_config_applied_info"); err != nil {
		t.Error(err)
	}

	_, span := svc.TracerProvider.Tracer("test").Start(t.Context(), "op")
	span.End()
	attrs := attribute.NewSet(span.(sdktrace.ReadOnlySpan).Attributes()...)
	if v, _ := attrs.Value("vigil.config.cohort"); v.AsString() != "gray" {
		t.Errorf("vigil.config.cohort = %q", v.String())
	}
	if v, _ := attrs.Value("vigil.config.versions"); v.String() != `["shop/payment/settings=3"]` {
		t.Errorf("vigil.config.versions = %s", v.String())
	}

	// A gray instance's log records say so.
	svc.Logger.Info("charged", "amount", 3)
	if line := logs.String(); !strings.Contains(line, `"vigil.config.versions":["shop/payment/settings=3"],"vigil.config.cohort":"gray"`) {
		t.Errorf("a gray instance's log line: %s", line)
	}

	done := make(chan error, 1)
	// The span cannot be exported (no collector): bound the flush; the
	// watch must end at once.
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	go func() { done <- svc.Shutdown(ctx) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not stop the watch")
	}
}

func TestServiceConfigWithoutURL(t *testing.T) {
	svc, err := Start(t.Context(), Config{ServiceName: "x", Endpoint: "127.0.0.1:1", LogOutput: io.Discard, getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond) // no collector to flush to
		defer cancel()
		_ = svc.Shutdown(ctx)
	}()
	if _, err := svc.Config("a", "b", "c"); err != ErrNoConfigCentre {
		t.Errorf("Config without a URL: %v", err)
	}
}

func TestOTLPBearerToken(t *testing.T) {
	for in, want := range map[string]string{
		"":                                      "",
		"Authorization=Bearer abc":              "abc",
		"x=1, authorization = Bearer%20tok%3D ": "tok=",
		"Authorization=Basic Zm9vOmJhcg==":      "",
	} {
		if got := otlpBearerToken(in); got != want {
			t.Errorf("otlpBearerToken(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestGrayLogAttrs: records carry the versions only while some item is on
// its gray version.
func TestGrayLogAttrs(t *testing.T) {
	var st configState
	st.onApply("shop/a/b", configcentre.Snapshot{Version: 1})
	if st.grayLog.Load() != nil {
		t.Fatal("a formal instance's records are marked")
	}
	st.onApply("shop/a/c", configcentre.Snapshot{Version: 4, Gray: true})
	if got := st.grayLog.Load(); got == nil || len(*got) != 2 || (*got)[0].Value.String() != "[shop/a/b=1 shop/a/c=4]" {
		t.Fatalf("gray: %v", got)
	}
	st.onApply("shop/a/c", configcentre.Snapshot{Version: 5})
	if st.grayLog.Load() != nil {
		t.Error("still marked after the gray was promoted")
	}
}
