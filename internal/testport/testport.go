// Package testport hands tests loopback ports that no other caller gets.
//
// A test that starts a server in another process must choose its port
// before that process binds it, and in the gap between the choice and the
// bind the port is free. Two kinds of callers can take it there:
//
//   - another caller of this package, in this process or in a test binary
//     of another package that go test runs beside it: every port handed out
//     here is remembered for the life of the process and locked against
//     other processes with a lock file held open until exit;
//   - the kernel, for anyone: a listener on port 0 (httptest.NewServer, a
//     test's proxy, etcd's peer listener) or an outgoing connection is given
//     a port from the ephemeral range, in any process on the machine. Ports
//     used to be chosen by listening on port 0 and closing it, so they came
//     from that same range, and a server restarted after kill -9 on its old
//     port could find it taken by a client's connection. Ports are drawn
//     from outside the ephemeral range instead, where the kernel never
//     hands one out on its own.
package testport

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
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
	lo, hi, ok := pool()
	for range 1000 {
		var port int
		if ok {
			port = lo + rand.IntN(hi-lo+1)
		} else {
			port = kernelPort(t)
		}
		// Claimed before it is checked: a port some server of another
		// program binds stays claimed, which costs only that port.
		if claim(port) && bindable(port) {
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
	lo, hi, ok := pool()
	for range 200 {
		var base int
		if ok && hi-lo+1 >= n {
			base = lo + rand.IntN(hi-lo+2-n)
		} else {
			base = kernelPort(t)
		}
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

// kernelPort is the fallback where no range outside the ephemeral one is
// large enough: a port the kernel finds free, open to the race above.
func kernelPort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testport: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func allFree(base, n int) bool {
	for p := base; p < base+n; p++ {
		if handedOut.ports[p] || !bindable(p) {
			return false
		}
	}
	return true
}

func bindable(port int) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// pool is the range ports are drawn from, found once per process.
func pool() (lo, hi int, ok bool) {
	r := poolRange()
	return r.lo, r.hi, r.ok
}

var poolRange = sync.OnceValue(func() (r struct {
	lo, hi int
	ok     bool
}) {
	r.lo, r.hi, r.ok = poolOutside(ephemeralRange())
	return r
})

const (
	// poolFloor keeps clear of the ports well-known services listen on
	// (Prometheus 9090, ClickHouse 9000, etcd 2379, ...).
	poolFloor = 10000
	// poolMin is the smallest range worth drawing from at random: a few
	// hundred ports a test run, many runs side by side.
	poolMin = 2000
)

// poolOutside returns the range below the ephemeral range [eLo, eHi], or
// above it, whichever is large enough; ok is false when neither is.
func poolOutside(eLo, eHi int) (lo, hi int, ok bool) {
	if eLo-poolFloor >= poolMin {
		return poolFloor, eLo - 1, true
	}
	if 65535-eHi >= poolMin {
		return max(eHi+1, poolFloor), 65535, true
	}
	return 0, 0, false
}

// ephemeralRange is the range the kernel gives to port 0 and to outgoing
// connections: Linux's setting, else the IANA range (the BSDs' and macOS's
// default).
func ephemeralRange() (lo, hi int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			lo, err1 := strconv.Atoi(f[0])
			hi, err2 := strconv.Atoi(f[1])
			if err1 == nil && err2 == nil && 0 < lo && lo <= hi && hi <= 65535 {
				return lo, hi
			}
		}
	}
	return 49152, 65535
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
