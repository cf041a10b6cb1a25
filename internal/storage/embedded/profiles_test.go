package embedded

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/storagetest"
)

func openProfiles(t *testing.T, dir string, now func() time.Time) *ProfileStore {
	t.Helper()
	s, err := OpenProfileStore(context.Background(), ProfileOptions{Dir: dir, Retention: 24 * time.Hour, Now: now})
	if err != nil {
		t.Fatalf("OpenProfileStore: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestProfileStorageBytes(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, err := OpenProfileStore(context.Background(), ProfileOptions{Dir: t.TempDir(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg, "vigil_storage_bytes"); err != nil || n != 1 {
		t.Fatalf("vigil_storage_bytes series: %d, %v", n, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n, _ := testutil.GatherAndCount(reg, "vigil_storage_bytes"); n != 0 {
		t.Errorf("after Close: %d series, want none", n)
	}
}

// Below the disk reserve a write is refused, nothing of it stored.
func TestProfileDiskFull(t *testing.T) {
	s, err := OpenProfileStore(context.Background(), ProfileOptions{Dir: t.TempDir(), DiskReserve: 1 << 62})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	data := storagetest.PprofBytes(t, []string{"samples", "cpu"}, storagetest.ProfileSample{Stack: []string{"f"}, Values: []int64{1, 10}})
	err = s.WriteProfiles(t.Context(), []storage.Profile{{Service: "svc", Kind: storage.ProfileCPU, Start: now.Add(-time.Second), End: now, Data: data}})
	if !errors.Is(err, ErrDiskFull) {
		t.Fatalf("write below the reserve: %v, want ErrDiskFull", err)
	}
	if n := countProfiles(t, s, "svc"); n != 0 {
		t.Errorf("%d profiles stored", n)
	}
}

func TestProfileConformance(t *testing.T) {
	storagetest.RunProfileStore(t, func(t *testing.T) storage.ProfileStore {
		return openProfiles(t, t.TempDir(), nil)
	})
}

func countProfiles(t *testing.T, s storage.ProfileReader, svc string) int {
	t.Helper()
	q := storage.ProfileQuery{Service: svc, Kind: storage.ProfileCPU, SampleTypes: []string{"cpu"}, Start: time.Unix(0, 0), End: time.Unix(1<<33, 0)}
	m, err := s.MergeProfiles(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	return m.Profiles
}

// What WriteProfiles acknowledged is there after a reopen, and a reopen
// past the retention drops it.
func TestProfileReopenAndRetention(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	clock := func() time.Time { return now }
	s := openProfiles(t, dir, clock)
	data := storagetest.PprofBytes(t, []string{"samples", "cpu"}, storagetest.ProfileSample{Stack: []string{"f"}, Values: []int64{1, 10}})
	p := storage.Profile{Service: "svc", Kind: storage.ProfileCPU, Start: now.Add(-10 * time.Second), End: now, Data: data}
	if err := s.WriteProfiles(t.Context(), []storage.Profile{p}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openProfiles(t, dir, clock)
	if n := countProfiles(t, s, "svc"); n != 1 {
		t.Fatalf("after reopen: %d profiles, want 1", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	now = now.Add(25 * time.Hour)
	s = openProfiles(t, dir, clock)
	if n := countProfiles(t, s, "svc"); n != 0 {
		t.Fatalf("past the retention: %d profiles, want 0", n)
	}
	var stacks int
	if err := s.db.QueryRow(`SELECT count(*) FROM profile_stacks`).Scan(&stacks); err != nil || stacks != 0 {
		t.Errorf("past the retention: %d stacks (%v), want none", stacks, err)
	}
}

// With more stacks stored than the cache of their ids holds, each stack is
// still stored once: the writes past the bound ask the database, before
// and after a reopen.
func TestProfileStackCacheBound(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	open := func() *ProfileStore {
		s, err := OpenProfileStore(t.Context(), ProfileOptions{Dir: dir, Retention: 24 * time.Hour, MaxCachedStacks: 2})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// The fixtures' line numbers follow the order of the functions:
	// every write starts with the stacks of the one before.
	write := func(s *ProfileStore, stacks ...string) {
		t.Helper()
		now = now.Add(time.Second)
		var samples []storagetest.ProfileSample
		for _, f := range stacks {
			samples = append(samples, storagetest.ProfileSample{Stack: []string{f, "main"}, Values: []int64{1, 10}})
		}
		data := storagetest.PprofBytes(t, []string{"samples", "cpu"}, samples...)
		if err := s.WriteProfiles(t.Context(), []storage.Profile{{Service: "svc", Kind: storage.ProfileCPU, Start: now.Add(-time.Second), End: now, Data: data}}); err != nil {
			t.Fatal(err)
		}
	}
	check := func(s *ProfileStore, want int) {
		t.Helper()
		var all, distinct int
		if err := s.db.QueryRow(`SELECT count(*), count(DISTINCT stack_id) FROM profile_stacks`).Scan(&all, &distinct); err != nil {
			t.Fatal(err)
		}
		if all != want || distinct != want {
			t.Errorf("%d stack rows, %d distinct, want %d of each", all, distinct, want)
		}
		if len(s.stackIDs) > 2 {
			t.Errorf("%d stack ids in memory, want at most 2", len(s.stackIDs))
		}
	}
	s := open()
	write(s, "a", "b", "c")
	write(s, "a", "b", "c", "d")
	check(s, 4)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open()
	defer s.Close()
	if s.allStacks {
		t.Error("reopened with 4 stacks and room for 2 ids: the cache claims to hold them all")
	}
	write(s, "a", "b", "c", "d", "e")
	check(s, 5)
	if n := countProfiles(t, s, "svc"); n != 3 {
		t.Errorf("%d profiles, want 3", n)
	}
}
