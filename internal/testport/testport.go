// Package testport hands tests loopback ports that no other caller gets.
//
// A test that starts a server in another process must choose its port
// before that process binds it, so it asks the kernel for a free one and
// closes it again. In that gap the kernel may give the same port to the
// next caller in this process, or to a test binary of another package
// running beside it (go test runs packages in parallel), and one of the
// servers fails to start. Every port handed out here is remembered for the
// life of the process and locked against other processes with a lock file
// held open until exit, so no two callers of one test run share a port.
package testport

import (
	"net"
	"strconv"
	"sync"
	"testing"
)

var handedOut = struct {
	mu    sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// Addr returns a loopback address ("127.0.0.1:port") no other caller of
// this package gets while this process lives.
func Addr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(Port(t)))
}

// Addrs returns n distinct addresses as Addr does.
func Addrs(t testing.TB, n int) []string {
	t.Helper()
	out := make([]string, n)
	for i := range out {
		out[i] = Addr(t)
	}
	return out
}

// Port returns a free loopback port as Addr does.
func Port(t testing.TB) int {
	t.Helper()
	handedOut.mu.Lock()
	defer handedOut.mu.Unlock()
	for range 1000 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("testport: %v", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if claim(port) {
			return port
		}
	}
	t.Fatal("testport: no free port in 1000 tries")
	return 0
}

// Run returns the first of n consecutive free loopback ports, all claimed,
// for programs that take a base port and count up from it.
func Run(t testing.TB, n int) int {
	t.Helper()
	handedOut.mu.Lock()
	defer handedOut.mu.Unlock()
	for range 200 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("testport: %v", err)
		}
		base := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if base+n-1 > 65535 || !allFree(base, n) {
			continue
		}
		claimed := 0
		for claimed < n && claim(base+claimed) {
			claimed++
		}
		if claimed == n {
			return base
		}
		// Ports claimed before the clash stay claimed: nobody else gets
		// them either, which costs only a few ports.
	}
	t.Fatalf("testport: no run of %d free ports", n)
	return 0
}

func allFree(base, n int) bool {
	for p := base; p < base+n; p++ {
		if handedOut.ports[p] {
			return false
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			return false
		}
		ln.Close()
	}
	return true
}

// claim marks port as handed out, in this process and (where lock files
// work) in every other; it reports false when someone has it already.
// Callers hold handedOut.mu.
func claim(port int) bool {
	if handedOut.ports[port] {
		return false
	}
	if !lockAcrossProcesses(port) {
		return false
	}
	handedOut.ports[port] = true
	return true
}
