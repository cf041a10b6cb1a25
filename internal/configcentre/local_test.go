package configcentre

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func openLocal(t *testing.T, dir string) *Local {
	t.Helper()
	l, err := OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func propose(t *testing.T, l *Local, cmds ...Command) {
	t.Helper()
	for _, c := range cmds {
		if _, err := l.Propose(context.Background(), c); err != nil {
			t.Fatalf("%s: %v", c.Op, err)
		}
	}
}

func TestLocalSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	l := openLocal(t, dir)
	propose(t, l, put("a", TypeText), put("b", TypeText), gray("c", Match{Instances: []string{"pod-a"}}))
	if _, err := l.Propose(context.Background(), gray("d", Match{Percent: pct(5)})); !errors.Is(err, ErrConflict) {
		t.Fatalf("second gray: %v", err)
	}
	want := snapshotBytes(t, l.Machine())
	l.Close()

	l = openLocal(t, dir)
	if got := snapshotBytes(t, l.Machine()); string(got) != string(want) {
		t.Fatalf("after restart:\n%s\nwant\n%s", got, want)
	}
	if l.Dropped != 0 {
		t.Errorf("dropped %d bytes of an intact log", l.Dropped)
	}
	// Writes go on after the restart, numbered after the old ones.
	propose(t, l, Command{Op: OpPromote, Item: item, Author: "bob", Time: t0})
	r, _ := l.Machine().Resolve(item, "pod-z", nil)
	if r.Version != 4 || r.Content != "c" {
		t.Errorf("after promote: %+v", r)
	}
}

func TestLocalCutsTornRecord(t *testing.T) {
	dir := t.TempDir()
	l := openLocal(t, dir)
	propose(t, l, put("a", TypeText), put("b", TypeText))
	l.Close()
	// A record whose write never finished: a header and half a body.
	path := filepath.Join(dir, "commands-1.log")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte{0, 0, 0, 100, 1, 2, 3, 4, '{', '"'}); err != nil {
		t.Fatal(err)
	}
	f.Close()

	l = openLocal(t, dir)
	if l.Dropped != 10 {
		t.Errorf("dropped %d bytes, want 10", l.Dropped)
	}
	propose(t, l, put("c", TypeText))
	l.Close()
	l = openLocal(t, dir)
	r, err := l.Machine().Resolve(item, "", nil)
	if err != nil || r.Version != 3 || r.Content != "c" {
		t.Errorf("after the cut and a write: %+v %v", r, err)
	}
}

func TestLocalCompacts(t *testing.T) {
	old := compactBytes
	compactBytes = 1
	t.Cleanup(func() { compactBytes = old })
	dir := t.TempDir()
	l := openLocal(t, dir)
	propose(t, l, put("a", TypeText), put("b", TypeText))
	want := snapshotBytes(t, l.Machine())
	l.Close()

	// Open compacts the log into a snapshot and starts log 2.
	l = openLocal(t, dir)
	if got := snapshotBytes(t, l.Machine()); string(got) != string(want) {
		t.Fatalf("after compaction:\n%s\nwant\n%s", got, want)
	}
	propose(t, l, Command{Op: OpRollback, Item: item, Version: 1, Time: t0})
	l.Close()
	if _, err := os.Stat(filepath.Join(dir, "commands-1.log")); !os.IsNotExist(err) {
		t.Errorf("log 1 kept after compaction: %v", err)
	}
	compactBytes = old
	l = openLocal(t, dir)
	it, err := l.Machine().Item(item)
	if err != nil || len(it.Versions) != 3 || it.Versions[2].From != 1 {
		t.Fatalf("after compaction and restart: %+v %v", it, err)
	}
}
