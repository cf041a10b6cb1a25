package configcentre

import (
	"context"
	"strconv"
	"strings"
	"testing"
)

// BenchmarkResolve is what every watcher does at each change: one
// instance's value, here inside a labels gray.
func BenchmarkResolve(b *testing.B) {
	m := NewMachine()
	mustApply(b, m, put(strings.Repeat("x", 4096), TypeText), gray("y", Match{Labels: map[string]string{"zone": "eu-1", "version": "2"}}))
	labels := map[string]string{"zone": "eu-1", "version": "2", "pod": "a"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Resolve(item, "pod-a", labels); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApplyPutYAML applies puts of a 4 KiB YAML document (parsed to
// check it) to an item with a growing history.
func BenchmarkApplyPutYAML(b *testing.B) {
	var doc strings.Builder
	for i := 0; doc.Len() < 4096; i++ {
		doc.WriteString("key" + strconv.Itoa(i) + ": {a: 1, b: [x, y]}\n")
	}
	m := NewMachine()
	c := put(doc.String(), TypeYAML)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.ApplyCommand(c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLocalPropose is a single node's write: check, append, fsync,
// apply. The fsync dominates; it is the price of losing nothing.
func BenchmarkLocalPropose(b *testing.B) {
	l, err := OpenLocal(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	c := put(`{"timeout":"2s","flag":true}`, TypeJSON)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.Propose(context.Background(), c); err != nil {
			b.Fatal(err)
		}
	}
}
