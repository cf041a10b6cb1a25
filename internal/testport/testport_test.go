package testport

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

func TestPortsNeverRepeatInProcess(t *testing.T) {
	seen := map[int]bool{}
	for range 300 {
		p := Port(t)
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
	base := Run(t, 4)
	for p := base; p < base+4; p++ {
		if seen[p] {
			t.Fatalf("run %d..%d reuses port %d", base, base+3, p)
		}
	}
}

// TestPortsNeverRepeatAcrossProcesses runs this test binary as a child
// that claims ports while the parent holds its own, and checks the two
// sets are disjoint.
func TestPortsNeverRepeatAcrossProcesses(t *testing.T) {
	if os.Getenv("TESTPORT_CHILD") != "" {
		var out []string
		for range 200 {
			out = append(out, strconv.Itoa(Port(t)))
		}
		os.Stdout.WriteString("PORTS " + strings.Join(out, ",") + "\n")
		return
	}
	mine := map[int]bool{}
	for range 200 {
		mine[Port(t)] = true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestPortsNeverRepeatAcrossProcesses$", "-test.count=1")
	cmd.Env = append(os.Environ(), "TESTPORT_CHILD=1")
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, b)
	}
	_, list, ok := strings.Cut(string(b), "PORTS ")
	if !ok {
		t.Fatalf("child printed no ports:\n%s", b)
	}
	list, _, _ = strings.Cut(list, "\n")
	for _, s := range strings.Split(list, ",") {
		p, err := strconv.Atoi(s)
		if err != nil {
			t.Fatal(err)
		}
		if mine[p] {
			t.Fatalf("port %d handed to both processes", p)
		}
	}
}

func TestPoolOutside(t *testing.T) {
	for _, tc := range []struct {
		name     string
		eLo, eHi int
		lo, hi   int
		ok       bool
	}{
		{"linux default", 32768, 60999, poolFloor, 32767, true},
		{"iana", 49152, 65535, poolFloor, 49151, true},
		{"low ephemeral range, room above", 1024, 50000, 50001, 65535, true},
		{"whole range ephemeral", 1024, 65535, 0, 0, false},
		{"just too little below and above", poolFloor + poolMin - 1, 65535 - poolMin + 1, 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lo, hi, ok := poolOutside(tc.eLo, tc.eHi)
			if lo != tc.lo || hi != tc.hi || ok != tc.ok {
				t.Errorf("poolOutside(%d, %d) = %d, %d, %v; want %d, %d, %v", tc.eLo, tc.eHi, lo, hi, ok, tc.lo, tc.hi, tc.ok)
			}
		})
	}
}

// TestPortsOutsideEphemeralRange pins the class of the collision: a port
// handed out must not be one the kernel may give, between the hand-out and
// the server's bind, to a listener on port 0 or an outgoing connection.
func TestPortsOutsideEphemeralRange(t *testing.T) {
	eLo, eHi := ephemeralRange()
	if _, _, ok := pool(); !ok {
		t.Skipf("ephemeral range %d-%d leaves no room outside it", eLo, eHi)
	}
	ports := []int{Run(t, 5)}
	for range 200 {
		ports = append(ports, Port(t))
	}
	for _, p := range ports {
		if p >= eLo && p <= eHi {
			t.Fatalf("port %d is in the ephemeral range %d-%d", p, eLo, eHi)
		}
	}
	// And the other way round: listeners on port 0, opened while the
	// ports are handed out but not yet bound, never get one of them.
	held := map[int]bool{}
	for _, p := range ports {
		held[p] = true
	}
	for range 200 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if held[p] {
			t.Fatalf("a listener on port 0 was given handed-out port %d", p)
		}
	}
}
