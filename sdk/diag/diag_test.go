package diag

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"
)

func get(t *testing.T, h http.Handler, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, path, nil))
	return rec
}

func untar(t *testing.T, body []byte) map[string][]byte {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("response is not gzip: %v", err)
	}
	tr := tar.NewReader(gz)
	files := map[string][]byte{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatalf("reading tar: %v", err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[hdr.Name] = b
	}
}

func TestMountDisabled(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		path string
	}{
		{"zero options pprof", Options{}, "/debug/pprof/"},
		{"zero options snapshot", Options{}, "/debug/snapshot"},
		{"snapshot only: pprof off", Options{EnableSnapshot: true}, "/debug/pprof/goroutine"},
		{"pprof only: snapshot off", Options{EnablePprof: true}, "/debug/snapshot"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mux := http.NewServeMux()
			Mount(mux, tt.opts)
			if rec := get(t, mux, tt.path); rec.Code != http.StatusNotFound {
				t.Fatalf("GET %s = %d, want 404", tt.path, rec.Code)
			}
		})
	}
}

func TestPprofEnabled(t *testing.T) {
	mux := http.NewServeMux()
	Mount(mux, Options{EnablePprof: true})
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline"} {
		rec := get(t, mux, path)
		if rec.Code != http.StatusOK || rec.Body.Len() == 0 {
			t.Errorf("GET %s = %d (%d bytes), want 200 with a body", path, rec.Code, rec.Body.Len())
		}
	}
}

func TestSnapshot(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })

	mux := http.NewServeMux()
	Mount(mux, Options{EnableSnapshot: true, CPUProfileDuration: 100 * time.Millisecond})
	rec := get(t, mux, "/debug/snapshot")
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d: %s", rec.Code, rec.Body)
	}
	if cd := rec.Header().Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment;") || !strings.Contains(cd, ".tar.gz") {
		t.Errorf("Content-Disposition = %q", cd)
	}
	files := untar(t, rec.Body.Bytes())
	for _, name := range []string{"goroutines.txt", "heap.pb.gz", "cpu.pb.gz", "runtime_metrics.txt", "tcp_connections.txt", "build.txt"} {
		if len(files[name]) == 0 {
			t.Errorf("%s missing or empty (archive has %d files)", name, len(files))
		}
	}
	if !strings.Contains(string(files["goroutines.txt"]), "diag.TestSnapshot") {
		t.Error("goroutines.txt does not contain the test's own goroutine")
	}
	for _, name := range []string{"heap.pb.gz", "cpu.pb.gz"} {
		gz, err := gzip.NewReader(bytes.NewReader(files[name]))
		if err != nil {
			t.Errorf("%s: not gzip: %v", name, err)
			continue
		}
		if b, err := io.ReadAll(gz); err != nil || len(b) == 0 {
			t.Errorf("%s: decompress: %d bytes, %v", name, len(b), err)
		}
	}
	if !strings.Contains(string(files["runtime_metrics.txt"]), "/sched/goroutines:goroutines=") {
		t.Error("runtime_metrics.txt lacks /sched/goroutines:goroutines")
	}
	var found bool
	for line := range strings.Lines(string(files["tcp_connections.txt"])) {
		if strings.Contains(line, ln.Addr().String()) && strings.Contains(line, "LISTEN") {
			found = true
		}
	}
	if !found {
		t.Errorf("tcp_connections.txt does not list listener %s:\n%s", ln.Addr(), files["tcp_connections.txt"])
	}
	if how := string(files["cpu_profile.txt"]); !strings.Contains(how, "method: runtime/pprof") || !strings.Contains(how, "continuous_profiler: none") {
		t.Errorf("cpu_profile.txt = %q, want runtime/pprof without a continuous profiler", how)
	}
	if !strings.Contains(string(files["build.txt"]), "path\t") {
		t.Errorf("build.txt = %q, want build info", files["build.txt"])
	}
}

func TestSnapshotCPUProfileBusy(t *testing.T) {
	if err := pprof.StartCPUProfile(io.Discard); err != nil {
		t.Fatalf("could not start a competing CPU profile: %v", err)
	}
	t.Cleanup(pprof.StopCPUProfile)

	h := newSnapshotHandler(Options{EnableSnapshot: true, CPUProfileDuration: time.Millisecond})
	rec := get(t, h, "/debug/snapshot")
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200 despite busy CPU profiler", rec.Code)
	}
	files := untar(t, rec.Body.Bytes())
	if _, ok := files["cpu.pb.gz"]; ok {
		t.Error("cpu.pb.gz present although profiling was busy")
	}
	if note := string(files["cpu.pb.gz.error.txt"]); !strings.Contains(note, ErrCPUProfileBusy.Error()) {
		t.Errorf("cpu.pb.gz.error.txt = %q, want busy note", note)
	}
	if _, ok := files["cpu_profile.txt"]; ok {
		t.Error("cpu_profile.txt present without a CPU profile")
	}
	if len(files["goroutines.txt"]) == 0 {
		t.Error("other files must still be collected")
	}
}

func TestSnapshotConcurrentGets429(t *testing.T) {
	h := newSnapshotHandler(Options{EnableSnapshot: true})
	entered, release := make(chan struct{}), make(chan struct{})
	h.wait = func(ctx context.Context, _ time.Duration) error {
		close(entered)
		<-release
		return nil
	}
	var first *httptest.ResponseRecorder
	var wg sync.WaitGroup
	wg.Go(func() { first = get(t, h, "/debug/snapshot") })
	<-entered
	if rec := get(t, h, "/debug/snapshot"); rec.Code != http.StatusTooManyRequests {
		t.Errorf("concurrent snapshot = %d, want 429", rec.Code)
	}
	close(release)
	wg.Wait()
	if first.Code != http.StatusOK {
		t.Fatalf("first snapshot = %d, want 200", first.Code)
	}
	// The slot is free again afterwards.
	h.wait = func(context.Context, time.Duration) error { return nil }
	if rec := get(t, h, "/debug/snapshot"); rec.Code != http.StatusOK {
		t.Fatalf("snapshot after completion = %d, want 200", rec.Code)
	}
}

func TestParseProcNetTCP(t *testing.T) {
	// Fixtures are in the kernel's little-endian (x86, arm64) rendering.
	tests := []struct {
		file      string
		proto     string
		want      []string // "local remote state inode"
		wantError bool
	}{
		{"proc_net_tcp", "tcp", []string{
			"10.0.2.15:443 8.8.8.8:57506 TIME_WAIT 0",
			"127.0.0.1:8080 0.0.0.0:0 LISTEN 12345",
			"127.0.0.1:50000 127.0.0.1:8080 ESTABLISHED 12346",
		}, false},
		{"proc_net_tcp6", "tcp6", []string{
			"127.0.0.1:8081 127.0.0.1:54321 ESTABLISHED 22223",
			"[::1]:80 [::]:0 LISTEN 22222",
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			socks, err := parseProcNetTCP(f, tt.proto)
			if (err != nil) != tt.wantError {
				t.Errorf("err = %v, wantError %v", err, tt.wantError)
			}
			var got []string
			for _, s := range socks {
				if s.proto != tt.proto {
					t.Errorf("proto = %q", s.proto)
				}
				got = append(got, s.local.String()+" "+s.remote.String()+" "+s.state+" "+s.inode)
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestTCPConnectionsWithoutProc(t *testing.T) {
	out := string(tcpConnections(filepath.Join(t.TempDir(), "no-proc")))
	if !strings.Contains(out, "tcp connections unavailable") {
		t.Fatalf("got %q, want an unavailability note", out)
	}
}

func BenchmarkRuntimeMetrics(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = runtimeMetrics()
	}
}

func TestSnapshotSecondsParameter(t *testing.T) {
	tests := []struct {
		query    string
		wantCode int
		wantCPU  time.Duration
	}{
		{"", http.StatusOK, DefaultCPUProfileDuration},
		{"?seconds=2", http.StatusOK, 2 * time.Second},
		{"?seconds=60", http.StatusOK, MaxCPUProfileDuration},
		{"?seconds=0", http.StatusBadRequest, 0},
		{"?seconds=61", http.StatusBadRequest, 0},
		{"?seconds=1.5", http.StatusBadRequest, 0},
		{"?seconds=x", http.StatusBadRequest, 0},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			h := newSnapshotHandler(Options{EnableSnapshot: true})
			var got time.Duration
			h.wait = func(_ context.Context, d time.Duration) error { got = d; return nil }
			rec := get(t, h, "/debug/snapshot"+tt.query)
			if rec.Code != tt.wantCode {
				t.Fatalf("code = %d, want %d: %s", rec.Code, tt.wantCode, rec.Body)
			}
			if got != tt.wantCPU {
				t.Errorf("CPU profile ran %v, want %v", got, tt.wantCPU)
			}
		})
	}
}
