//go:build unix

package testport

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// held keeps the lock files open, and so locked, until the process exits;
// the kernel drops the locks then, however the process ends.
var held []*os.File

func lockAcrossProcesses(port int) bool {
	dir := filepath.Join(os.TempDir(), "vigil-test-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return true // no shared directory: in-process uniqueness only
	}
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return true
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return false
	}
	held = append(held, f)
	return true
}
