package memlimit

import (
	"runtime/debug"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestGuard(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	var live uint64
	reg := prometheus.NewRegistry()
	g := New(Options{Limit: 1000, Reserved: 200, RefuseAt: 0.5, Registerer: reg, liveHeap: func() uint64 { return live }})
	if g.GoLimit() != 800 || debug.SetMemoryLimit(-1) != 800 {
		t.Fatalf("Go limit %d (runtime %d), want 800: the cap minus what DuckDB holds", g.GoLimit(), debug.SetMemoryLimit(-1))
	}
	// Refuse above 50% of 800 = 400; accept again below 45% = 360.
	for _, step := range []struct {
		live     uint64
		pressure bool
	}{
		{100, false}, {400, false}, {401, true}, {380, true}, {359, false}, {399, false}, {800, true},
	} {
		live = step.live
		g.check()
		if g.Pressure() != step.pressure {
			t.Errorf("live heap %d: pressure %v, want %v", step.live, g.Pressure(), step.pressure)
		}
	}
	if n, err := testutil.GatherAndCount(reg, "vigil_memory_pressure", "vigil_memory_limit_bytes"); err != nil || n != 2 {
		t.Errorf("gauges registered: %d (%v), want 2", n, err)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP vigil_memory_pressure 1 while live heap is above the share of limits.memory_limit at which ingest is refused.
# TYPE vigil_memory_pressure gauge
vigil_memory_pressure 1
`), "vigil_memory_pressure"); err != nil {
		t.Error(err)
	}

	var none *Guard
	if none.Pressure() {
		t.Error("a nil guard (no limit configured) must never refuse")
	}
	if New(Options{}) != nil {
		t.Error("no limit must give no guard")
	}
	if g := New(Options{Limit: 1000, Reserved: 990, liveHeap: func() uint64 { return 0 }}); g.GoLimit() != 250 {
		t.Errorf("Go limit %d with almost all reserved, want a quarter of the cap (250)", g.GoLimit())
	}
}

func TestHeadroom(t *testing.T) {
	var none *Guard
	if got := none.Headroom(); got != 0 {
		t.Errorf("nil guard: Headroom = %d, want 0", got)
	}
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	g := New(Options{Limit: 1000 << 20, Reserved: 200 << 20, RefuseAt: 0.75, liveHeap: func() uint64 { return 0 }})
	if got, want := g.Headroom(), int64(200<<20); got != want {
		t.Errorf("Headroom = %d, want %d (a quarter of the 800 MiB Go share)", got, want)
	}
}
