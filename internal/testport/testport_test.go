package testport

import (
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
