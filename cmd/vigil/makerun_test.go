package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-observability/vigil/internal/testport"
)

// TestMakeRunCtrlC runs the Makefile's run recipe with the binary under test
// and stops it as a terminal's Ctrl-C does, with SIGINT to the whole
// foreground process group: the demo stops (and flushes) before the server,
// nothing prints a crash or an error, and no process is left.
func TestMakeRunCtrlC(t *testing.T) {
	for _, tool := range []string{"make", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed to run the Makefile's run recipe: %v", tool, err)
		}
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	httpAddr, grpcAddr, otlpHTTPAddr := testport.Addr(t), testport.Addr(t), testport.Addr(t)
	demoBase := testport.Run(t, 4)
	// -o build: the binary is the one TestMain built, not the Makefile's.
	cmd := makeCommand("-s", "-o", "build", "run", "BIN="+vigilBin,
		"RUN_DATA_DIR="+dataDir, "RUN_HTTP_ADDR="+httpAddr, "RUN_OTLP_GRPC_ADDR="+grpcAddr,
		"RUN_OTLP_HTTP_ADDR="+otlpHTTPAddr, "RUN_DEMO_PORT="+strconv.Itoa(demoBase))
	// Its own process group, as a terminal's foreground job has.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		// Whatever happened, leave nothing behind.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		for _, pid := range leftovers(dataDir, demoBase) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if t.Failed() {
			t.Logf("make run output:\n%s", tail(out.String(), 6000))
		}
	})

	// The demo's spans reach the server: stopping now has telemetry to flush.
	waitFor(t, "the demo's services in the server", 2*time.Minute, func() bool {
		select {
		case err := <-done:
			t.Fatalf("make run ended by itself: %v", err)
		default:
		}
		resp, err := http.Get("http://" + httpAddr + "/api/services")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var r struct{ Data []string }
		return json.NewDecoder(resp.Body).Decode(&r) == nil && slices.Contains(r.Data, "payments")
	})
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	var err error
	select {
	case err = <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("make run did not stop within 2m of Ctrl-C")
	}
	// make ends itself with the SIGINT it got, as after any Ctrl-C; the
	// recipe must not have failed (that would be an exit status).
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.Sys().(syscall.WaitStatus).Signal() == syscall.SIGINT) {
		t.Errorf("make run after Ctrl-C: %v", err)
	}
	text := out.String()
	for _, bad := range []string{"***", "Segmentation", "context deadline exceeded", `"level":"ERROR"`} {
		if strings.Contains(text, bad) {
			t.Errorf("output contains %q", bad)
		}
	}
	if m := shellJobNotice.FindString(text); m != "" {
		t.Errorf("output contains the shell's job notice %q", m)
	}
	demoStopped, serverStopping := strings.Index(text, "shop stopped"), strings.Index(text, "shutting down")
	if demoStopped < 0 || serverStopping < 0 || demoStopped > serverStopping {
		t.Errorf("want the demo stopped (at %d) before the server shuts down (at %d)", demoStopped, serverStopping)
	}
	if left := leftovers(dataDir, demoBase); len(left) > 0 {
		t.Errorf("processes left after Ctrl-C: %v", left)
	}
}

// shellJobNotice matches what bash prints about a job that ended ("[1]+
// Done ...") or a child killed by a signal ("line 1: 123 Terminated ...").
var shellJobNotice = regexp.MustCompile(`(?m)^\[\d+\][-+ ] |\b\d+ (Terminated|Killed|Segmentation fault)\b`)

// makeCommand runs make with args in the repository's root. Run from `make
// test`, the parent make's flags and jobserver must not reach it.
func makeCommand(args ...string) *exec.Cmd {
	cmd := exec.Command("make", args...)
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "MAKEFLAGS=") || strings.HasPrefix(kv, "MFLAGS=") || strings.HasPrefix(kv, "MAKELEVEL=")
	})
	return cmd
}

// leftovers are the processes of the binary under test still running with
// this data directory (the server) or this demo port (the demo).
func leftovers(dataDir string, demoBase int) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(bytes.TrimRight(b, "\x00")), "\x00")
		if len(args) == 0 || args[0] != vigilBin {
			continue
		}
		if slices.Contains(args, dataDir) || slices.Contains(args, strconv.Itoa(demoBase)) {
			pids = append(pids, pid)
		}
	}
	return pids
}
