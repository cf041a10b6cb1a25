package clickhouse

import (
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/teststorage"
)

// Chunks read through chunkQueryable hold the samples the plain querier
// reads.
func TestWithChunks(t *testing.T) {
	st := teststorage.New(t)
	t.Cleanup(func() { _ = st.Close() })
	app := st.Appender(t.Context())
	ls := labels.FromStrings("__name__", "up", "job", "a")
	for i := range 5 {
		if _, err := app.Append(0, ls, int64(i)*1000, float64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	cq, err := chunkQueryable{st}.ChunkQuerier(0, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	defer cq.Close()
	set := cq.Select(t.Context(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "job", "a"))
	var got []float64
	for set.Next() {
		it := set.At().Iterator(nil)
		for it.Next() {
			c := it.At()
			ci := c.Chunk.Iterator(nil)
			for ci.Next() == chunkenc.ValFloat {
				_, v := ci.At()
				got = append(got, v)
			}
		}
	}
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 || got[4] != 4 {
		t.Fatalf("samples from chunks %v, want 0..4", got)
	}
}
