package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-observability/vigil/internal/testport"
)

// vigilBin is the binary under test, built once by TestMain exactly as the
// Makefile builds it.
var vigilBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vigil-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	vigilBin = filepath.Join(dir, "vigil")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=0.0.0-e2e -X main.commit=test -X main.branch=e2e", "-o", vigilBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build vigil:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is one running vigil process.
type server struct {
	cmd                         *exec.Cmd
	httpURL, otlpHTTPURL, grpcA string
	done                        chan error
	logs                        *syncBuffer
	// authHeader, when set, is sent with the harness's reads (cluster()).
	authHeader string
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// launchServer starts vigil on dataDir with fresh loopback ports, without
// waiting for it: a cluster's first node is not ready until others join.
func launchServer(t *testing.T, dataDir string, extra ...string) *server {
	t.Helper()
	h, oh, g := testport.Addr(t), testport.Addr(t), testport.Addr(t)
	// A caller that must know the address before (to write it into a
	// config) passes its own --http-addr.
	if i := slices.Index(extra, "--http-addr"); i >= 0 && i+1 < len(extra) {
		h = extra[i+1]
		extra = slices.Delete(slices.Clone(extra), i, i+2)
	}
	args := append([]string{"server", "--data-dir", dataDir, "--http-addr", h, "--otlp-http-addr", oh, "--otlp-grpc-addr", g}, extra...)
	s := &server{
		cmd:     exec.Command(vigilBin, args...),
		httpURL: "http://" + h, otlpHTTPURL: "http://" + oh, grpcA: g,
		done: make(chan error, 1), logs: &syncBuffer{},
	}
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			_ = s.cmd.Process.Kill()
			<-s.done
		}
		if t.Failed() {
			t.Logf("vigil output:\n%s", s.logs.String())
		}
	})
	return s
}

// startServer runs vigil on dataDir with fresh loopback ports and waits
// until /-/ready answers 200.
func startServer(t *testing.T, dataDir string, extra ...string) *server {
	t.Helper()
	for attempt := 1; ; attempt++ {
		s := launchServer(t, dataDir, extra...)
		err := s.awaitReady()
		if err == nil {
			return s
		}
		// testport's ports are never handed out twice nor given by the
		// kernel to anyone, but a program that does not ask testport (a
		// server started by hand on a port it chose) may still bind one
		// before vigil does. Where launchServer chose the ports, others
		// are as good.
		if attempt < 3 && !slices.Contains(extra, "--http-addr") && strings.Contains(s.logs.String(), "address already in use") {
			t.Logf("vigil found a port taken, starting it on others: %v", err)
			continue
		}
		t.Fatal(err)
	}
}

// waitReady waits until /-/ready answers 200, failing if vigil exits.
func (s *server) waitReady(t *testing.T) {
	t.Helper()
	if err := s.awaitReady(); err != nil {
		t.Fatal(err)
	}
}

func (s *server) awaitReady() error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case err := <-s.done:
			s.done <- err // for kill9, stop and the cleanup
			return fmt.Errorf("vigil exited during start-up: %w\n%s", err, s.logs.String())
		default:
		}
		resp, err := http.Get(s.httpURL + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("vigil not ready within 2m\n%s", s.logs.String())
}

func (s *server) kill9(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-s.done
}

func (s *server) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("vigil exited with %v after SIGTERM\n%s", err, s.logs.String())
		}
	case <-time.After(time.Minute):
		t.Fatal("vigil did not stop within 1m of SIGTERM")
	}
}

// getJSON fetches path from the server's HTTP address into v and returns the status.
func (s *server) getJSON(t *testing.T, path string, v any) int {
	t.Helper()
	resp, err := http.Get(s.httpURL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if v != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("GET %s: %v\n%s", path, err, body)
		}
	}
	return resp.StatusCode
}

// promQuery runs an instant query through vigil's Prometheus API.
func (s *server) promQuery(t *testing.T, q string) []promSample {
	t.Helper()
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Result []promSample `json:"result"`
		} `json:"data"`
	}
	if code := s.getJSON(t, "/api/v1/query?query="+url.QueryEscape(q), &r); code != http.StatusOK || r.Status != "success" {
		t.Fatalf("query %q: HTTP %d status %q", q, code, r.Status)
	}
	return r.Data.Result
}

type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func TestVersion(t *testing.T) {
	out, err := exec.Command(vigilBin, "version").CombinedOutput()
	if err != nil {
		t.Fatal(err, string(out))
	}
	for _, want := range []string{"vigil 0.0.0-e2e", "commit test", "go1."} {
		if !strings.Contains(string(out), want) {
			t.Errorf("version output %q lacks %q", out, want)
		}
	}
}

func TestBadConfigFailsClearly(t *testing.T) {
	p := filepath.Join(t.TempDir(), "vigil.yaml")
	if err := os.WriteFile(p, []byte("retention: 10m\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(vigilBin, "server", "--config", p).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("want exit code 2, got %v", err)
	}
	if !strings.Contains(string(out), "retention") {
		t.Errorf("error output should name the bad setting: %s", out)
	}
}

func TestCleanShutdownAndRestart(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir)
	var health int
	if health = s.getJSON(t, "/-/healthy", nil); health != http.StatusOK {
		t.Fatalf("healthy = %d", health)
	}
	s.stop(t)
	s = startServer(t, dir)
	s.stop(t)
}

// lineCount counts the log lines of a process that match substr, for
// asserting on structured logs.
func lineCount(out, substr string) int {
	n := 0
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if strings.Contains(sc.Text(), substr) {
			n++
		}
	}
	return n
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool, state ...func() string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for ctx.Err() == nil {
		if cond() {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	// state says what was seen last, so a timeout in CI can be read.
	for _, f := range state {
		what += "; " + f()
	}
	t.Fatalf("timed out after %v waiting for %s", timeout, what)
}
