package memtrim

import (
	"os"
	"slices"
	"testing"
)

func TestCleanReadOnlyMappings(t *testing.T) {
	// The code and the read-only data of the executable (dirty pages of a
	// file just written included), not its RELRO segment (anonymous: the
	// dynamic linker wrote it), its data, another file's mappings or a
	// file whose name only starts the same.
	got, err := cleanReadOnlyMappings("testdata/smaps", "/opt/vigil/bin/vigil")
	if err != nil {
		t.Fatal(err)
	}
	want := []mapping{{0x400000, 0x9c8000}, {0x9c8000, 0x5c0d000}}
	if !slices.Equal(got, want) {
		t.Errorf("mappings = %#x, want %#x", got, want)
	}
	// A name with a space is the rest of the line.
	got, err = cleanReadOnlyMappings("testdata/smaps", "/opt/vigil/bin/vigil old")
	if err != nil {
		t.Fatal(err)
	}
	if want := []mapping{{0x7f621b000000, 0x7f621b001000}}; !slices.Equal(got, want) {
		t.Errorf("mappings of the name with a space = %#x, want %#x", got, want)
	}
}

// The test binary pages its own code out and goes on running: the pages
// come back as it runs.
func TestStartupPagesOutOwnExecutable(t *testing.T) {
	if _, err := os.Stat("/proc/self/smaps"); err != nil {
		t.Skip("no /proc/self/smaps:", err)
	}
	released, err := Startup()
	if err != nil {
		t.Fatal(err)
	}
	if released.ExecutableBytes <= 0 {
		t.Errorf("released %d bytes of the executable, want some", released.ExecutableBytes)
	}
	// Still running, in code that was just paged out.
	if got := slices.Index([]int{1, 2, 3}, 3); got != 2 {
		t.Fatalf("Index = %d", got)
	}
}
