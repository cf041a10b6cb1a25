package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/vigil-observability/vigil/internal/snapshot"
	"github.com/vigil-observability/vigil/internal/testport"
)

// vigil snapshot --service gateway against vigil server and vigil demo:
// the demo's instances are in the registry, each serves /debug/snapshot,
// and the command writes a bundle from every instance in under 40 s,
// which get and list then find. The demo profiles itself, so the
// instance's CPU profile is taken through its continuous profiler.
func TestSnapshotDemo(t *testing.T) {
	s := startServer(t, t.TempDir())
	base := testport.Run(t, 4)
	startDemo(t, s, base)
	waitFor(t, "gateway in the registry", 30*time.Second, func() bool {
		var entries []json.RawMessage
		return s.getJSON(t, "/v1/catalog/service/gateway", &entries) == http.StatusOK && len(entries) == 1
	})
	waitFor(t, "gateway's traces stored", 30*time.Second, func() bool {
		var svcs struct{ Data []string }
		return s.getJSON(t, "/api/services", &svcs) == http.StatusOK && strings.Contains(strings.Join(svcs.Data, ","), "gateway")
	})

	out := filepath.Join(t.TempDir(), "gateway.tar.gz")
	start := time.Now()
	stdout, stderr, code := runVigil(t, "snapshot", "--server", s.httpURL, "--service", "gateway", "--cpu-seconds", "2", "--out", out)
	took := time.Since(start)
	if code != 0 {
		t.Fatalf("vigil snapshot exited %d: %s%s", code, stdout, stderr)
	}
	t.Logf("vigil snapshot took %v:\n%s%s", took, stdout, stderr)
	if took > 40*time.Second {
		t.Errorf("vigil snapshot took %v, want under 40s", took)
	}
	body, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	files := untarBundle(t, body)
	var m snapshot.Manifest
	if err := json.Unmarshal(files["manifest.json"], &m); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	if m.Service != "gateway" || len(m.Instances) != 1 || m.Answered != 1 {
		t.Fatalf("manifest: service %q, %d instances, %d answered; want gateway, 1, 1: %+v", m.Service, len(m.Instances), m.Answered, m.Instances)
	}
	in := m.Instances[0]
	if in.Source != "registry" || in.Status != "ok" {
		t.Errorf("instance %+v, want found in the registry and ok", in)
	}
	for _, name := range []string{"cpu.pb.gz", "heap.pb.gz"} {
		p, err := profile.Parse(bytes.NewReader(files[in.Dir+"/"+name]))
		if err != nil {
			t.Errorf("%s/%s: %v", in.Dir, name, err)
			continue
		}
		if name == "cpu.pb.gz" && p.DurationNanos < int64(2*time.Second) {
			t.Errorf("CPU profile of %v, want the 2s asked for", time.Duration(p.DurationNanos))
		}
	}
	if how := string(files[in.Dir+"/cpu_profile.txt"]); !strings.Contains(how, "method: through the continuous profiler") {
		t.Errorf("%s/cpu_profile.txt = %q, want the profile taken through the demo's continuous profiler", in.Dir, how)
	}
	for _, name := range []string{"goroutines.txt", "runtime_metrics.txt", "tcp_connections.txt", "build.txt"} {
		if len(files[in.Dir+"/"+name]) == 0 {
			t.Errorf("%s/%s missing or empty", in.Dir, name)
		}
	}
	if m.Traces == 0 || len(files["traces/index.json"]) == 0 {
		t.Errorf("no traces in the bundle (manifest says %d)", m.Traces)
	}
	if _, ok := files["logs.jsonl"]; !ok {
		t.Error("logs.jsonl missing")
	}
	if len(m.Errors) > 0 {
		t.Errorf("store reads failed: %v", m.Errors)
	}

	stdout, stderr, code = runVigil(t, "snapshot", "list", "--server", s.httpURL)
	if code != 0 || !strings.Contains(stdout, m.ID) {
		t.Errorf("vigil snapshot list: exit %d, %s%s; want %s listed", code, stdout, stderr, m.ID)
	}
	again := filepath.Join(t.TempDir(), "again.tar.gz")
	if _, stderr, code := runVigil(t, "snapshot", "get", m.ID, "--server", s.httpURL, "--out", again); code != 0 {
		t.Fatalf("vigil snapshot get: exit %d: %s", code, stderr)
	}
	if b, _ := os.ReadFile(again); !bytes.Equal(b, body) {
		t.Error("vigil snapshot get wrote another bundle than the capture's")
	}

	// An instance registered at the cloud metadata address is not asked:
	// the snapshot dials through the outbound policy.
	req, _ := http.NewRequest(http.MethodPut, s.httpURL+"/v1/agent/service/register",
		strings.NewReader(`{"ID": "meta-1", "Name": "meta", "Address": "169.254.169.254", "Port": 80}`))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("registering: %v %v", resp, err)
	}
	resp, err := http.Post(s.httpURL+"/api/v1/snapshots", "application/json", strings.NewReader(`{"service": "meta", "cpu_seconds": 1}`))
	if err != nil {
		t.Fatal(err)
	}
	var meta snapshot.Manifest
	_ = json.NewDecoder(resp.Body).Decode(&meta)
	resp.Body.Close()
	if len(meta.Instances) != 1 || meta.Instances[0].Status != "not_allowed" {
		t.Errorf("an instance at the metadata address: %+v, want not_allowed", meta.Instances)
	}

	if _, stderr, code := runVigil(t, "snapshot", "--server", s.httpURL, "--service", "nobody", "--out", filepath.Join(t.TempDir(), "x")); code != 1 || !strings.Contains(stderr, "no instance") {
		t.Errorf("a service without instances: exit %d, %s; want 1 and the reason", code, stderr)
	}
}

func untarBundle(t *testing.T, body []byte) map[string][]byte {
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
