package embedded

import (
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// The locations written at close are read at the next start only while
// they still describe the day's trace_index: a stale, damaged or too
// large file is passed over for the table, and no file outlives the
// start that read it.
func TestTraceLocationsFile(t *testing.T) {
	at := time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC)
	first, later := pcommon.TraceID{1, 15: 1}, pcommon.TraceID{2, 15: 2}
	for _, c := range []struct {
		name string
		// spoil changes the file written at the first close (of a store
		// holding first only) before the store is opened again, after
		// later was written at the second close.
		spoil     func(t *testing.T, file, stale string)
		locations int
		wantHeld  bool
	}{
		{"current", func(t *testing.T, file, stale string) {}, 0, true},
		{"stale: written before the last writes", func(t *testing.T, file, stale string) {
			if err := os.Rename(stale, file); err != nil {
				t.Fatal(err)
			}
		}, 0, true},
		{"damaged", func(t *testing.T, file, stale string) {
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			b[locsHeader+3] ^= 1
			if err := os.WriteFile(file, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}, 0, true},
		{"cut short", func(t *testing.T, file, stale string) {
			if err := os.Truncate(file, int64(locsHeader+10)); err != nil {
				t.Fatal(err)
			}
		}, 0, true},
		{"over the budget", func(t *testing.T, file, stale string) {}, 1, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := t.Context()
			dir := t.TempDir()
			clock := &fixedClock{at}
			s := openWithLocations(t, dir, clock, 0)
			if err := s.WriteTraces(ctx, spanAt(first, 1, at)); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(dir, "spanlog-20250310.duckdb"+locsFileSuffix)
			stale := filepath.Join(t.TempDir(), "stale")
			if b, err := os.ReadFile(file); err != nil {
				t.Fatalf("no locations file after close: %v", err)
			} else if err := os.WriteFile(stale, b, 0o644); err != nil {
				t.Fatal(err)
			}
			s = openWithLocations(t, dir, clock, 0)
			<-s.locsLoaded
			if _, err := os.Stat(file); !os.IsNotExist(err) {
				t.Errorf("the locations file is still there after the start read it (%v)", err)
			}
			if err := s.WriteTraces(ctx, spanAt(later, 1, at.Add(time.Hour))); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			c.spoil(t, file, stale)

			s = openWithLocations(t, dir, clock, c.locations)
			<-s.locsLoaded
			p := s.snapshot()[0]
			if n, held := p.locs.size(); held != c.wantHeld || (held && n != 2) {
				t.Errorf("after the start: %d traces held (%v), want 2 (%v)", n, held, c.wantHeld)
			}
			for _, id := range []pcommon.TraceID{first, later} {
				if n := spanCount(t, s, id); n != 1 {
					t.Errorf("trace %s: %d spans, want 1", id, n)
				}
			}
		})
	}
}

// With the disk below its reserve at close, no file is written (the
// reserve is for the WAL and checkpoints), and the next start reads the
// table.
func TestTraceLocationsFileNotWrittenIntoReserve(t *testing.T) {
	at := time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	s := openWithLocations(t, dir, &fixedClock{at}, 0)
	id := pcommon.TraceID{1, 15: 1}
	if err := s.WriteTraces(t.Context(), spanAt(id, 1, at)); err != nil {
		t.Fatal(err)
	}
	s.guard.reserve = math.MaxInt64 / 2
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "spanlog-20250310.duckdb"+locsFileSuffix)); !os.IsNotExist(err) {
		t.Fatalf("locations file written into the disk reserve (%v)", err)
	}
	s = openWithLocations(t, dir, &fixedClock{at}, 0)
	if n := spanCount(t, s, id); n != 1 {
		t.Errorf("trace: %d spans, want 1", n)
	}
}
