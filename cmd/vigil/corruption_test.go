package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// damage overwrites n bytes of path at off (negative: from the end) with
// garbage, as a bad sector or a torn write would leave them.
func damage(t *testing.T, path string, off int64, n int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if off < 0 {
		off += st.Size()
	}
	if off < 0 || off+int64(n) > st.Size() {
		t.Fatalf("damage %s at %d+%d: the file has %d bytes", path, off, n, st.Size())
	}
	junk := make([]byte, n)
	for i := range junk {
		junk[i] = byte(0xa5 ^ i*7)
	}
	if _, err := f.WriteAt(junk, off); err != nil {
		t.Fatal(err)
	}
}

// sendAll sends n requests of each kind and fails the test on a refusal.
func (c *ingestClient) sendAll(t *testing.T, n int, kinds ...string) {
	t.Helper()
	for range n {
		for _, kind := range kinds {
			if r := c.send(t.Context(), kind); r != nil {
				t.Fatalf("%s: %s", kind, r.what)
			}
		}
	}
}

// wantDamageReported checks the server's report of damage: an error line
// with msg naming file (a path suffix) and the quarantine when there is
// one, and vigil_storage_corruptions_total{kind,store} at want.
func wantDamageReported(t *testing.T, s *server, msg, file string, quarantined bool, store, kind string, want float64) {
	t.Helper()
	found := false
	for _, line := range strings.Split(s.logs.String(), "\n") {
		if strings.Contains(line, `"level":"ERROR"`) && strings.Contains(line, msg) && strings.Contains(line, file) &&
			(!quarantined || strings.Contains(line, `"quarantined_to":"`)) {
			found = true
			t.Logf("reported: %s", line)
		}
	}
	if !found {
		t.Errorf("no error line %q naming %s", msg, file)
	}
	series := `vigil_storage_corruptions_total{kind="` + kind + `",store="` + store + `"}`
	if got := s.metricValue(t, series); got != want {
		t.Errorf("%s = %v, want %v", series, got, want)
	}
}

// TestCorruptTSDBWALKeepsSamplesBeforeDamage damages the newest WAL
// segment after a kill -9: the server starts, every sample in the older
// segment is there, and the repair is reported.
func TestCorruptTSDBWALKeepsSamplesBeforeDamage(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir)
	before := newIngestClient(t, s, 1, "e2e_wal")
	before.sendAll(t, 20, sendSamples)
	s.kill9(t)

	// The restart opens a new segment; what follows goes there.
	s = startServer(t, dir)
	after := newIngestClient(t, s, 2, "e2e_wal")
	after.seq = 1000
	after.sendAll(t, 20, sendSamples)
	s.kill9(t)

	segs, err := filepath.Glob(filepath.Join(dir, "tsdb", "wal", "0*"))
	if err != nil || len(segs) < 2 {
		t.Fatalf("want at least 2 WAL segments, got %v (%v)", segs, err)
	}
	slices.Sort(segs)
	last := segs[len(segs)-1]
	st, err := os.Stat(last)
	if err != nil {
		t.Fatal(err)
	}
	damage(t, last, st.Size()/2, 64)

	s = startServer(t, dir)
	if n := checkAcked(t, s, &before.a, "e2e_wal"); n > 0 {
		t.Fatalf("%d remote_write requests written before the damaged segment were lost", n)
	}
	wantDamageReported(t, s, "damaged TSDB write-ahead log repaired", filepath.Base(last), false, "tsdb", "wal", 1)
	// Requests written before the damage point in the same segment stay
	// too; those after it are gone (the log says so).
	lost := len(missingAcked(t, s, &after.a, "e2e_wal", time.Hour))
	t.Logf("of %d requests in the damaged segment, %d were lost", len(after.a.rwReqs), lost)
	if lost == 0 || lost == len(after.a.rwReqs) {
		t.Errorf("lost %d of %d requests in the damaged segment, want some kept (before the damage) and some lost", lost, len(after.a.rwReqs))
	}
	// The repaired server takes writes.
	after.use(t, s)
	after.sendAll(t, 2, sendSamples)
}

// TestCorruptTSDBBlockQuarantined damages a persisted block: the server
// starts anyway, moves the block to the quarantine directory, keeps serving
// the samples that live elsewhere (the head), and reports the block.
func TestCorruptTSDBBlockQuarantined(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir)
	// Samples five hours old, then current ones: the head then spans more
	// than one and a half block ranges and compacts the old part to a block.
	old := newIngestClient(t, s, 1, "e2e_block_old")
	old.at = time.Now().Add(-5 * time.Hour)
	old.sendAll(t, 5, sendSamples)
	cur := newIngestClient(t, s, 2, "e2e_block_cur")
	cur.sendAll(t, 5, sendSamples)
	var block string
	waitFor(t, "a persisted block", time.Minute, func() bool {
		m, _ := filepath.Glob(filepath.Join(dir, "tsdb", "*", "meta.json"))
		if len(m) > 0 {
			block = filepath.Dir(m[0])
		}
		return block != ""
	})
	if n := checkAckedRange(t, s, &old.a, "e2e_block_old", 6*time.Hour); n > 0 {
		t.Fatalf("%d old requests not served before the damage", n)
	}
	s.stop(t)

	index := filepath.Join(block, "index")
	st, err := os.Stat(index)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(index, st.Size()/2); err != nil {
		t.Fatal(err)
	}

	s = startServer(t, dir)
	if n := checkAcked(t, s, &cur.a, "e2e_block_cur"); n > 0 {
		t.Fatalf("%d requests outside the damaged block were lost", n)
	}
	wantDamageReported(t, s, "damaged TSDB block moved to quarantine", filepath.Base(block), true, "tsdb", "block", 1)
	if _, err := os.Stat(filepath.Join(dir, "quarantine", "tsdb", filepath.Base(block), "index")); err != nil {
		t.Errorf("the damaged block is not in the quarantine directory: %v", err)
	}
	if _, err := os.Stat(block); !os.IsNotExist(err) {
		t.Errorf("the damaged block is still in the TSDB: %v", err)
	}
	cur.use(t, s)
	cur.sendAll(t, 2, sendSamples)
}

// TestCorruptSpanLogFilesQuarantined damages the span/log store's files:
// first the WAL of today's file (after a kill -9), then today's file itself.
// The server starts each time, serves every other day's spans and logs and
// whatever the damage spared, and reports what it moved to quarantine.
func TestCorruptSpanLogFilesQuarantined(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir)
	yesterday := newIngestClient(t, s, 1, "unused")
	yesterday.at = time.Now().Add(-24 * time.Hour)
	yesterday.sendAll(t, 3, sendTracesHTTP, sendLogs)
	checkpointed := newIngestClient(t, s, 2, "unused")
	checkpointed.sendAll(t, 3, sendTracesHTTP, sendLogs)
	// A clean stop checkpoints every day file: the data so far is in the
	// day files, not their WALs.
	s.stop(t)

	s = startServer(t, dir)
	inWAL := newIngestClient(t, s, 3, "unused")
	inWAL.sendAll(t, 3, sendTracesHTTP, sendLogs)
	s.kill9(t)

	today := filepath.Join(dir, "spanlogs", "spanlog-"+time.Now().UTC().Format("20060102")+".duckdb")
	wal := today + ".wal"
	st, err := os.Stat(wal)
	if err != nil {
		t.Fatalf("today's WAL after kill -9: %v", err)
	}
	damage(t, wal, st.Size()/3, 256)

	s = startServer(t, dir)
	for name, c := range map[string]*ingestClient{"yesterday's": yesterday, "checkpointed": checkpointed} {
		if n := checkAckedRange(t, s, &c.a, "unused", 25*time.Hour); n > 0 {
			t.Errorf("%d of %s traces and log batches lost after the WAL was damaged", n, name)
		}
	}
	wantDamageReported(t, s, "damaged span/log write-ahead log truncated at the damage", filepath.Base(wal), true, "duckdb", "wal", 1)
	// The WAL's entries before the damage are replayed.
	lost := len(missingAcked(t, s, &inWAL.a, "unused", time.Hour))
	total := len(inWAL.a.traceIDs) + len(inWAL.a.logTraces)
	t.Logf("of %d traces and log batches in the damaged WAL, %d were lost", total, lost)
	if lost == 0 || lost == total {
		t.Errorf("lost %d of %d traces and log batches in the damaged WAL, want those before the damage kept and some lost", lost, total)
	}
	if _, err := os.Stat(filepath.Join(dir, "quarantine", "spanlogs", filepath.Base(wal))); err != nil {
		t.Errorf("the damaged WAL is not in the quarantine directory: %v", err)
	}
	s.stop(t)

	// Now today's file itself.
	damage(t, today, 0, 16<<10)
	s = startServer(t, dir)
	if n := checkAckedRange(t, s, &yesterday.a, "unused", 25*time.Hour); n > 0 {
		t.Errorf("%d of yesterday's traces and log batches lost after today's file was damaged", n)
	}
	wantDamageReported(t, s, "damaged span/log day file moved to quarantine", filepath.Base(today), true, "duckdb", "partition", 1)
	if _, err := os.Stat(filepath.Join(dir, "quarantine", "spanlogs", filepath.Base(today))); err != nil {
		t.Errorf("the damaged day file is not in the quarantine directory: %v", err)
	}
	// Today takes writes again, in a new file.
	fresh := newIngestClient(t, s, 4, "unused")
	fresh.sendAll(t, 2, sendTracesHTTP, sendLogs)
	if n := checkAcked(t, s, &fresh.a, "unused"); n > 0 {
		t.Errorf("%d traces and log batches written after the quarantine not served", n)
	}
}
