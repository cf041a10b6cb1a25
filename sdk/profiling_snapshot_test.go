package vigil

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-observability/vigil/sdk/diag"
)

// startDiagnosed starts a profiled service named name, uploading to addr
// every second, with /debug/snapshot and /debug/pprof mounted on the
// returned mux.
func startDiagnosed(t *testing.T, name, addr string) (*Service, *http.ServeMux) {
	t.Helper()
	svc, err := Start(t.Context(), Config{
		ServiceName: name, Endpoint: "127.0.0.1:1", LogOutput: io.Discard, getenv: noEnv,
		SelfCheckTimeout: 50 * time.Millisecond,
		Diagnostics:      diag.Options{EnableSnapshot: true, EnablePprof: true},
		Profiling:        Profiling{Enabled: true, ServerAddress: addr, UploadRate: time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	svc.Mount(mux)
	return svc, mux
}

// takeSnapshot asks h for a snapshot with a CPU profile of seconds and
// returns its files.
func takeSnapshot(t *testing.T, h http.Handler, seconds string) map[string][]byte {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/snapshot?seconds="+seconds, nil))
	if rec.Code != http.StatusOK {
		t.Errorf("GET /debug/snapshot = %d: %s", rec.Code, rec.Body)
		return nil
	}
	files := map[string][]byte{}
	gz, err := gzip.NewReader(rec.Body)
	if err != nil {
		t.Errorf("snapshot is not gzip: %v", err)
		return nil
	}
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Errorf("reading the snapshot: %v", err)
			return files
		}
		b, _ := io.ReadAll(tr)
		files[hdr.Name] = b
	}
}

// checkCPUProfile fails t unless files hold a CPU profile taken through
// the continuous profiler.
func checkCPUProfile(t *testing.T, files map[string][]byte) {
	t.Helper()
	if note, ok := files["cpu.pb.gz.error.txt"]; ok {
		t.Fatalf("no CPU profile in the snapshot: %s", note)
	}
	gz, err := gzip.NewReader(bytes.NewReader(files["cpu.pb.gz"]))
	if err != nil {
		t.Fatalf("cpu.pb.gz: %v", err)
	}
	if b, err := io.ReadAll(gz); err != nil || len(b) == 0 {
		t.Fatalf("cpu.pb.gz: %d bytes, %v", len(b), err)
	}
	if how := string(files["cpu_profile.txt"]); !strings.Contains(how, "method: through the continuous profiler") {
		t.Errorf("cpu_profile.txt = %q, want it to say the profile was taken through the continuous profiler", how)
	}
}

// waitCPUUploads waits until rec has received n CPU profiles that ended
// after since, and fails t if they do not come within 10 s.
func waitCPUUploads(t *testing.T, rec *ingestRecorder, since time.Time, n int) {
	t.Helper()
	waitUpload(t, rec, fmt.Sprintf("%d CPU profiles ending after %s", n, since.Format(time.StampMilli)), func(r profileRange) bool {
		return r.until.After(since)
	}, n)
}

// waitUpload waits until rec has received n CPU profiles for which ok
// holds, and fails t if they do not come within 10 s.
func waitUpload(t *testing.T, rec *ingestRecorder, what string, ok func(profileRange) bool, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := 0
		for _, r := range rec.cpu() {
			if ok(r) {
				got++
			}
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited 10s for %s; CPU uploads: %v", what, rec.cpu())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// burn keeps a core busy until stop closes, so that profiles have samples.
func burn(stop <-chan struct{}) {
	data := make([]byte, 4096)
	for {
		select {
		case <-stop:
			return
		default:
			sum := sha256.Sum256(data)
			data[0] = sum[0]
		}
	}
}

// A snapshot of a service whose process profiles continuously has its CPU
// profile, taken through the continuous profiler; the profiler uploads the
// snapshot's seconds too, and goes on uploading afterwards.
func TestSnapshotWhileProfiling(t *testing.T) {
	rec := &ingestRecorder{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	svc, mux := startDiagnosed(t, "profiled", srv.URL)
	defer shutdownQuietly(svc)
	// The profiler holds the CPU profiler once it has uploaded.
	waitCPUUploads(t, rec, time.Time{}, 1)

	stop := make(chan struct{})
	go burn(stop)
	start := time.Now()
	files := takeSnapshot(t, mux, "1")
	end := time.Now()
	close(stop)
	checkCPUProfile(t, files)

	// The snapshot's second went to the continuous profiles as well: one
	// CPU upload covers it, begun and ended within the snapshot.
	waitUpload(t, rec, "the CPU upload of the snapshot's second", func(r profileRange) bool {
		return !r.from.Before(start) && !r.until.After(end) && r.until.Sub(r.from) >= 900*time.Millisecond
	}, 1)
	// And the continuous profiles keep coming.
	waitCPUUploads(t, rec, end, 2)

	// go tool pprof's endpoint shares the profiler the same way.
	resp := httptest.NewRecorder()
	mux.ServeHTTP(resp, httptest.NewRequest(http.MethodGet, "/debug/pprof/profile?seconds=1", nil))
	if _, err := gzip.NewReader(resp.Body); resp.Code != http.StatusOK || err != nil {
		t.Errorf("GET /debug/pprof/profile while profiling = %d (%v): %.200s", resp.Code, err, resp.Body)
	}
}

// Two snapshots at once in one process (two services sharing the
// profiler): the first has the CPU profile, the second says why it has
// none, and the continuous profiler goes on.
func TestSnapshotsAtOnceWhileProfiling(t *testing.T) {
	rec := &ingestRecorder{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	gateway, gatewayMux := startDiagnosed(t, "gateway", srv.URL)
	defer shutdownQuietly(gateway)
	payments, paymentsMux := startDiagnosed(t, "payments", srv.URL)
	defer shutdownQuietly(payments)
	waitCPUUploads(t, rec, time.Time{}, 1)

	var first map[string][]byte
	var wg sync.WaitGroup
	wg.Go(func() { first = takeSnapshot(t, gatewayMux, "2") })
	// Well inside the first's two seconds.
	time.Sleep(500 * time.Millisecond)
	second := takeSnapshot(t, paymentsMux, "1")
	wg.Wait()
	end := time.Now()

	checkCPUProfile(t, first)
	if _, ok := second["cpu.pb.gz"]; ok {
		t.Error("the second snapshot has a CPU profile although the first's ran")
	}
	if note := string(second["cpu.pb.gz.error.txt"]); !strings.Contains(note, diag.ErrCPUProfileBusy.Error()) {
		t.Errorf("second snapshot's cpu.pb.gz.error.txt = %q, want %q", note, diag.ErrCPUProfileBusy)
	}
	if len(second["goroutines.txt"]) == 0 {
		t.Error("the second snapshot lacks its other files")
	}
	waitCPUUploads(t, rec, end, 2)
}

// A service that leaves the profiler during a snapshot (the last one, so
// that the profiler stops) waits for the snapshot's CPU profile, and
// leaves the process's CPU profiler free: neither held nor started twice.
func TestProfilerReleasedDuringSnapshot(t *testing.T) {
	rec := &ingestRecorder{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	svc, mux := startDiagnosed(t, "leaving", srv.URL)
	waitCPUUploads(t, rec, time.Time{}, 1)

	var files map[string][]byte
	var wg sync.WaitGroup
	start := time.Now()
	wg.Go(func() { files = takeSnapshot(t, mux, "2") })
	time.Sleep(500 * time.Millisecond)
	shutdownQuietly(svc)
	stopped := time.Since(start)
	wg.Wait()
	checkCPUProfile(t, files)
	if stopped < 2*time.Second {
		t.Errorf("the profiler stopped %v into a 2s snapshot, want after its CPU profile", stopped)
	}
	if n := processProfiler.running(); n != 0 {
		t.Fatalf("%d services hold the profiler after the last left", n)
	}
	// Nothing holds the CPU profiler any more.
	if err := pprof.StartCPUProfile(io.Discard); err != nil {
		t.Fatalf("CPU profiler still held after the profiler stopped: %v", err)
	}
	pprof.StopCPUProfile()

	// A profiler started afterwards runs and uploads as usual.
	again := &ingestRecorder{}
	srv2 := httptest.NewServer(again)
	defer srv2.Close()
	next, mux2 := startDiagnosed(t, "next", srv2.URL)
	defer shutdownQuietly(next)
	waitCPUUploads(t, again, time.Time{}, 2)
	checkCPUProfile(t, takeSnapshot(t, mux2, "1"))
}
