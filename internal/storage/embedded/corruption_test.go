package embedded

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/tsdb/fileutil"
)

func TestDamagedFile(t *testing.T) {
	for msg, want := range map[string]string{
		"read records: corruption in segment /d/tsdb/wal/00000001 at 8727: invalid record size 41643": "/d/tsdb/wal/00000001",
		"open /d/tsdb/wal: permission denied": "",
	} {
		if got := damagedFile(msg); got != want {
			t.Errorf("damagedFile(%q) = %q, want %q", msg, got, want)
		}
	}
}

func TestWALDamageOffset(t *testing.T) {
	for msg, want := range map[string]int64{
		`IO Error: Failure while replaying WAL file "x.wal": Corrupt WAL file: entry at byte position 31617 computed checksum 1 does not match stored checksum 2`: 31617,
		`IO Error: The file "x" exists, but it is not a valid DuckDB database file!`:                                                                              0,
		`Corrupt WAL file: entry at byte position 0 computed checksum 1`:                                                                                          0,
	} {
		got, ok := walDamageOffset(errors.New(msg))
		if got != want || ok != (want > 0) {
			t.Errorf("walDamageOffset(%q) = %d, %v; want %d", msg, got, ok, want)
		}
	}
}

func TestIsULID(t *testing.T) {
	for name, want := range map[string]bool{
		"01M7Z2ETFWHES19Z83CF7KT79Z": true,
		"wal":                        false,
		"chunks_head":                false,
		"01M7Z2ETFWHES19Z83CF7KT79Z.tmp-for-deletion": false,
		"01m7z2etfwhes19z83cf7kt79z":                  false,
	} {
		if got := isULID(name); got != want {
			t.Errorf("isULID(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestNotDamage(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&fs.PathError{Op: "open", Path: "/d/index", Err: syscall.EACCES}, true},
		{fmt.Errorf("open block: %w", &fs.PathError{Op: "open", Path: "/d/chunks/000001", Err: syscall.EMFILE}), true},
		{errors.New(`IO Error: Could not set lock on file "/d/spanlog-20261121.duckdb": Conflicting lock is held in /usr/bin/vigil (PID 4242)`), true},
		{errors.New("Out of Memory Error: failed to allocate block of 262144 bytes"), true},
		{errors.New("invalid magic number 0"), false},
		{errors.New("IO Error: Corrupt database file: computed checksum 1 does not match stored checksum 2"), false},
		{errors.New("read symbols: invalid checksum"), false},
	} {
		if got := notDamage(tc.err); got != tc.want {
			t.Errorf("notDamage(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// While another process holds the TSDB's lock, a block that will not open
// may be mid-compaction rather than damaged: start-up fails, naming the
// lock, and the block stays where it is.
func TestBlocksLeftAloneUnderAnotherLock(t *testing.T) {
	dir := t.TempDir()
	lock, _, err := fileutil.Flock(filepath.Join(dir, "lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lock.Release() }()
	block := filepath.Join(dir, "01HZZZZZZZZZZZZZZZZZZZZZZZ")
	if err := os.Mkdir(block, 0o755); err != nil {
		t.Fatal(err)
	}
	err = quarantineBadBlocks(dir, filepath.Join(t.TempDir(), "q"), slog.New(slog.DiscardHandler), newCorruptionCounter("tsdb", corruptBlock))
	if err == nil || !strings.Contains(err.Error(), "another vigil") {
		t.Fatalf("err = %v, want the lock named", err)
	}
	if _, err := os.Stat(block); err != nil {
		t.Errorf("block moved while another process held the lock: %v", err)
	}
}

// The block check before tsdb.Open takes the TSDB's lock; it must not leave
// the file behind, or every start after a clean stop looks like one after a
// crash (a lock file warning, prometheus_tsdb_clean_start 0). A file a crash
// left must still be reported.
func TestCleanStartAfterCleanStop(t *testing.T) {
	for _, tc := range []struct {
		name      string
		crash     bool // leave the lock file as a killed process would
		wantClean float64
	}{
		{name: "clean stop", wantClean: 1},
		{name: "crash", crash: true, wantClean: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "tsdb")
			db, err := OpenMetrics(MetricsOptions{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if tc.crash {
				if err := os.WriteFile(filepath.Join(dir, "lock"), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var logs strings.Builder
			reg := prometheus.NewRegistry()
			db, err = OpenMetrics(MetricsOptions{Dir: dir, Registerer: reg, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = db.Close() }()
			if got := testutil.ToFloat64(gaugeNamed(t, reg, "prometheus_tsdb_clean_start")); got != tc.wantClean {
				t.Errorf("prometheus_tsdb_clean_start = %v, want %v", got, tc.wantClean)
			}
			if warned := strings.Contains(logs.String(), "lockfile"); warned != tc.crash {
				t.Errorf("lock file warning logged = %v, want %v; logs:\n%s", warned, tc.crash, logs.String())
			}
		})
	}
}

// gaugeNamed finds a registered metric by name, as a collector testutil
// can read.
func gaugeNamed(t *testing.T, g prometheus.Gatherer, name string) prometheus.Collector {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: "copy"}, func() float64 { return mf.GetMetric()[0].GetGauge().GetValue() })
		}
	}
	t.Fatalf("%s not registered", name)
	return nil
}
