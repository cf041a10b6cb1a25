package embedded

import (
	"slices"
	"testing"
	"time"

	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/storagetest"
)

// A day file written before the index tables existed gets them rebuilt
// from its spans when it is attached.
func TestSpanLogIndexesRebuiltForOldFiles(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	base := storagetest.Base(time.Now())
	s := openTestStore(t, dir)
	for _, f := range []string{"traces_rich.json", "traces_split_a.json", "traces_split_b.json"} {
		if err := s.WriteTraces(ctx, storagetest.LoadTraces(t, f, base)); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range s.snapshot() {
		for _, tbl := range []string{"trace_index", "operations"} {
			if _, err := s.db.ExecContext(ctx, "DROP TABLE "+p.alias+"."+tbl); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTestStore(t, dir)
	defer s.Close()
	td, err := s.GetTrace(ctx, storagetest.SplitTraceID)
	if err != nil {
		t.Fatalf("GetTrace after rebuild: %v", err)
	}
	if n := td.SpanCount(); n != 4 {
		t.Errorf("split trace has %d spans after rebuild, want 4", n)
	}
	svcs, err := s.Services(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"", "12", "checkout", "frontend", "payments"}; !slices.Equal(svcs, want) {
		t.Errorf("Services after rebuild = %q, want %q", svcs, want)
	}
	found, err := s.FindTraces(ctx, storage.TraceQuery{Service: "frontend"})
	if err != nil || len(found) != 1 || found[0].SpanCount != 4 {
		t.Errorf("FindTraces after rebuild = %+v, %v", found, err)
	}
}
