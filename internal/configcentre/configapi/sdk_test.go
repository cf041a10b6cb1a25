package configapi

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	sdkconfig "github.com/vigil-observability/vigil/sdk/configcentre"
)

// TestSDKClient runs the Go SDK's watcher against this handler, so that
// the two agree on the API's shapes: the first fetch, a put woken on the
// long poll, a gray by labels reaching only the cohort that sends the
// label, and its abort.
func TestSDKClient(t *testing.T) {
	srv, _ := newServer(t, t.TempDir())
	if code, b := do(t, srv, call{method: http.MethodPut, path: item, contentType: "application/yaml", body: "timeout: 2s\n"}); code != http.StatusOK {
		t.Fatalf("put: %d %s", code, b)
	}
	watch := func(version string) *sdkconfig.Value {
		c, err := sdkconfig.New(sdkconfig.Options{
			URL: srv.URL, Instance: "pod-" + version, Labels: map[string]string{"service.version": version},
			Wait: 2 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		v, err := c.Watch("shop", "payment", "settings")
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	oldV, newV := watch("1.3.0"), watch("1.4.0")
	var s struct {
		Timeout time.Duration `yaml:"timeout"`
	}
	if err := newV.Decode(&s); err != nil || s.Timeout != 2*time.Second || newV.Get().Version != 1 {
		t.Fatalf("first value: %+v %+v %v", newV.Get(), s, err)
	}
	changes := make(chan sdkconfig.Snapshot, 4)
	newV.OnChange(func(s sdkconfig.Snapshot) { changes <- s })
	next := func() sdkconfig.Snapshot {
		t.Helper()
		select {
		case s := <-changes:
			return s
		case <-time.After(5 * time.Second):
			t.Fatal("no change reached the SDK")
			return sdkconfig.Snapshot{}
		}
	}

	gray, _ := json.Marshal(map[string]any{"content": "timeout: 5s\n", "match": map[string]any{"labels": map[string]string{"service.version": "1.4.0"}}})
	if code, b := do(t, srv, call{method: http.MethodPost, path: item + "/gray", contentType: "application/json", body: string(gray)}); code != http.StatusOK {
		t.Fatalf("gray: %d %s", code, b)
	}
	if got := next(); !got.Gray || got.Version != 2 || got.Content != "timeout: 5s\n" {
		t.Errorf("the cohort got %+v, want gray version 2", got)
	}
	if code, b := do(t, srv, call{method: http.MethodPost, path: item + "/gray/abort"}); code != http.StatusOK {
		t.Fatalf("abort: %d %s", code, b)
	}
	if got := next(); got.Gray || got.Version != 1 {
		t.Errorf("after the abort the cohort got %+v, want formal version 1", got)
	}
	if got := oldV.Get(); got.Gray || got.Version != 1 {
		t.Errorf("an instance outside the gray holds %+v, want formal version 1", got)
	}
}
