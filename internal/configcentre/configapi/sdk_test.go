package configapi

import (
	"encoding/json"
	"fmt"
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

// TestSDKPromoteConverges: several SDK watchers on one item; a gray to
// two of them reaches only those two; once promoted, every watcher
// converges on the new formal version, and none is left on the gray.
func TestSDKPromoteConverges(t *testing.T) {
	srv, _ := newServer(t, t.TempDir())
	if code, b := do(t, srv, call{method: http.MethodPut, path: item, contentType: "application/yaml", body: "timeout: 2s\n"}); code != http.StatusOK {
		t.Fatalf("put: %d %s", code, b)
	}
	const n = 6
	values := make([]*sdkconfig.Value, n)
	for i := range values {
		c, err := sdkconfig.New(sdkconfig.Options{
			URL: srv.URL, Instance: fmt.Sprintf("pod-%d", i), Wait: 2 * time.Second,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		if values[i], err = c.Watch("shop", "payment", "settings"); err != nil {
			t.Fatal(err)
		}
	}
	converge := func(what string, want func(i int, s sdkconfig.Snapshot) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			ok := true
			for i, v := range values {
				ok = ok && want(i, v.Get())
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				for i, v := range values {
					t.Logf("pod-%d: %+v", i, v.Get())
				}
				t.Fatalf("the watchers did not converge: %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	converge("formal version 1", func(_ int, s sdkconfig.Snapshot) bool { return s.Version == 1 && !s.Gray })

	gray := `{"content":"timeout: 3s\n","match":{"instances":["pod-1","pod-4"]}}`
	if code, b := do(t, srv, call{method: http.MethodPost, path: item + "/gray", contentType: "application/json", body: gray}); code != http.StatusOK {
		t.Fatalf("gray: %d %s", code, b)
	}
	inGray := func(i int) bool { return i == 1 || i == 4 }
	converge("the gray on pod-1 and pod-4 only", func(i int, s sdkconfig.Snapshot) bool {
		if inGray(i) {
			return s.Version == 2 && s.Gray && s.Content == "timeout: 3s\n"
		}
		return s.Version == 1 && !s.Gray
	})

	code, b := do(t, srv, call{method: http.MethodPost, path: item + "/gray/promote"})
	if code != http.StatusOK {
		t.Fatalf("promote: %d %s", code, b)
	}
	var promoted struct{ Data struct{ Version uint64 } }
	if err := json.Unmarshal(b, &promoted); err != nil || promoted.Data.Version != 3 {
		t.Fatalf("promote answered %s", b)
	}
	converge("formal version 3 everywhere", func(_ int, s sdkconfig.Snapshot) bool {
		return s.Version == 3 && !s.Gray && s.Content == "timeout: 3s\n"
	})
}
