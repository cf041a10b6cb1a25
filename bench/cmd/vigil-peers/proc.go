package main

import (
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// proc is one server under test, started (pinned when the machine allows)
// by the harness and stopped cleanly so that its stores are complete on disk.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// startProc runs bin with args on the server CPU, its output in logPath.
func (h *harness) startProc(name, logPath string, env []string, bin string, args ...string) (*proc, error) {
	argv := append([]string{bin}, args...)
	if h.pin.enabled {
		argv = append([]string{"taskset", "-c", h.pin.serverCPU}, argv...)
		env = append(env, "GOMAXPROCS=1")
	}
	h.recordCommand(name, env, argv)
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop asks for a clean shutdown (SIGTERM), which makes every system here
// flush and close its stores, and kills the process if it takes too long.
func (p *proc) stop(timeout time.Duration) error {
	if p.exited() {
		return fmt.Errorf("%s had already exited: %v", p.name, p.err)
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop within %v; killed", p.name, timeout)
	}
}

// diskUsage is the space the files under dir occupy on disk (allocated
// blocks, as du prints without --apparent-size): preallocated or sparse
// files count for what they really take.
func diskUsage(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			total += st.Blocks * 512
		}
		return nil
	})
	return total, err
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}
