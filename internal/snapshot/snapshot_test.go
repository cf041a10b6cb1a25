package snapshot

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/vigil-observability/vigil/internal/registry"
	"github.com/vigil-observability/vigil/sdk/diag"
)

// diagServer is an instance serving the SDK's real /debug/snapshot.
func diagServer(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	diag.Mount(mux, diag.Options{EnableSnapshot: true})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// hangingServer accepts the request and never answers it.
func hangingServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	return srv
}

func register(t *testing.T, reg *registry.Registry, service, id string, srv *httptest.Server, meta map[string]string) {
	t.Helper()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(u.Host)
	p, _ := strconv.Atoi(port)
	if err := reg.Register(registry.Instance{ID: id, Service: service, Address: host, Port: p, Meta: meta}); err != nil {
		t.Fatal(err)
	}
}

func untar(t *testing.T, body []byte) map[string][]byte {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("bundle is not gzip: %v", err)
	}
	tr := tar.NewReader(gz)
	files := map[string][]byte{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatalf("reading bundle: %v", err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[hdr.Name] = b
	}
}

// A service of three instances, one of which never answers: the capture
// ends at the hanging one's deadline, with the two others' archives and
// the third named in the manifest with its reason.
func TestCaptureThreeInstancesOneHangs(t *testing.T) {
	reg := registry.New(registry.Options{})
	register(t, reg, "payments", "payments-1", diagServer(t), nil)
	register(t, reg, "payments", "payments-2", diagServer(t), nil)
	hang := hangingServer(t)
	// The third names its diagnostics URL in its metadata.
	register(t, reg, "payments", "payments-3", hang, map[string]string{DiagURLMeta: hang.URL + "/debug/snapshot"})
	register(t, reg, "orders", "orders-1", diagServer(t), nil)

	dir := t.TempDir()
	const slack = 2 * time.Second
	c, err := New(Options{Dir: dir, Registry: reg, InstanceSlack: slack})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c.Handler())
	defer srv.Close()

	start := time.Now()
	resp, err := http.Post(srv.URL+Path, "application/json", strings.NewReader(`{"service": "payments", "cpu_seconds": 1}`))
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	var m Manifest
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s = %d", Path, resp.StatusCode)
	}
	t.Logf("capture took %v", took)
	if limit := time.Second + slack + 2*time.Second; took > limit {
		t.Errorf("capture took %v, want under %v (CPU seconds + the per-instance deadline)", took, limit)
	}
	if len(m.Instances) != 3 || m.Answered != 2 {
		t.Fatalf("manifest: %d instances, %d answered; want 3 and 2: %+v", len(m.Instances), m.Answered, m.Instances)
	}
	for _, in := range m.Instances {
		want := "ok"
		if in.ID == "payments-3" {
			want = "timeout"
		}
		if in.Status != want {
			t.Errorf("instance %s: status %q (%s), want %q", in.ID, in.Status, in.Error, want)
		}
	}

	// The bundle, downloaded.
	resp, err = http.Get(srv.URL + Path + "/" + m.ID)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET bundle = %d", resp.StatusCode)
	}
	files := untar(t, body)
	var inBundle Manifest
	if err := json.Unmarshal(files["manifest.json"], &inBundle); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	if inBundle.ID != m.ID || len(inBundle.Instances) != 3 {
		t.Errorf("manifest.json = %+v, want the answer's", inBundle)
	}
	var cpuProfiles int
	for _, id := range []string{"payments-1", "payments-2"} {
		d := "instances/" + id + "/"
		for _, name := range []string{"heap.pb.gz", "cpu.pb.gz"} {
			b, ok := files[d+name]
			if !ok {
				// One CPU profile runs per process: the two instances
				// of this test share one, so one of them notes it.
				if _, noted := files[d+name+".error.txt"]; name == "cpu.pb.gz" && noted {
					continue
				}
				t.Errorf("%s%s missing; bundle has %v", d, name, keys(files))
				continue
			}
			if _, err := profile.Parse(bytes.NewReader(b)); err != nil {
				t.Errorf("%s%s does not parse: %v", d, name, err)
			}
			if name == "cpu.pb.gz" {
				cpuProfiles++
			}
		}
		for _, name := range []string{"goroutines.txt", "runtime_metrics.txt"} {
			if len(files[d+name]) == 0 {
				t.Errorf("%s%s missing or empty", d, name)
			}
		}
	}
	if cpuProfiles == 0 {
		t.Error("no instance's CPU profile in the bundle")
	}
	for name := range files {
		if strings.HasPrefix(name, "instances/payments-3/") || strings.HasPrefix(name, "instances/orders-1/") {
			t.Errorf("%s in the bundle: that instance sent nothing or was not asked", name)
		}
	}

	// Listed.
	resp, err = http.Get(srv.URL + Path)
	if err != nil {
		t.Fatal(err)
	}
	var list struct{ Snapshots []Manifest }
	_ = json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if len(list.Snapshots) != 1 || list.Snapshots[0].ID != m.ID {
		t.Errorf("list = %+v, want the one bundle", list.Snapshots)
	}
}

func keys(m map[string][]byte) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Every way an instance can fail to answer is named in the manifest.
func TestCaptureFailureReasons(t *testing.T) {
	reg := registry.New(registry.Options{})
	unavailable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "a snapshot is already in progress", http.StatusTooManyRequests)
	}))
	defer unavailable.Close()
	notGzip := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("hello"))
	}))
	defer notGzip.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	register(t, reg, "svc", "a-busy", unavailable, nil)
	register(t, reg, "svc", "b-garbage", notGzip, nil)
	register(t, reg, "svc", "c-refused", closed, nil)

	c, err := New(Options{Dir: t.TempDir(), Registry: reg, InstanceSlack: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.Capture(t.Context(), Request{Service: "svc", CPUSeconds: 1})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a-busy": "http_status", "b-garbage": "bad_archive", "c-refused": "refused"}
	for _, in := range m.Instances {
		if in.Status != want[in.ID] || in.Error == "" {
			t.Errorf("%s: status %q (%q), want %q with a reason", in.ID, in.Status, in.Error, want[in.ID])
		}
	}
	if m.Instances[0].HTTPStatus != http.StatusTooManyRequests {
		t.Errorf("a-busy: http_status %d, want 429", m.Instances[0].HTTPStatus)
	}

	if _, err := c.Capture(t.Context(), Request{Service: "nobody"}); err == nil {
		t.Error("a service without instances: no error")
	}
	if _, err := c.Capture(t.Context(), Request{Service: "svc", CPUSeconds: MaxCPUSeconds + 1}); err == nil {
		t.Error("cpu_seconds past the bound: no error")
	}
}

// Bundles past the count bound are removed oldest first.
func TestStorePrunes(t *testing.T) {
	dir := t.TempDir()
	s, err := openStore(dir, 2, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		m := Manifest{ID: "20260101T00000" + strconv.Itoa(i) + "Z-svc-0000000" + strconv.Itoa(i), Bytes: 3}
		if err := s.put(m, []byte("abc")); err != nil {
			t.Fatal(err)
		}
	}
	ms, _ := s.list()
	if len(ms) != 2 || ms[0].ID != "20260101T000002Z-svc-00000002" {
		t.Fatalf("kept %+v, want the two newest", ms)
	}
	if _, err := os.Stat(filepath.Join(dir, "20260101T000000Z-svc-00000000.tar.gz")); !os.IsNotExist(err) {
		t.Errorf("oldest archive still there: %v", err)
	}
	if _, err := s.path("../../etc/passwd"); err == nil {
		t.Error("a path outside the pattern was looked up")
	}
}
