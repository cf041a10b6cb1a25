package logql

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

// countingSource is a memSource that also counts, as CountQuery says,
// by walking its entries.
type countingSource struct {
	*memSource
	counted int
}

var _ Counter = (*countingSource)(nil)

func (s *countingSource) CountEntries(_ context.Context, q CountQuery) ([]EntryCount, error) {
	s.counted++
	type key struct {
		stream int
		bin    int64
		meta   string
	}
	index := map[key]int{}
	var out []EntryCount
	for si, st := range q.Streams {
		for _, ms := range s.streams {
			if ms.labels.String() != st.Labels.String() {
				continue
			}
			for _, e := range ms.entries {
				if e.ts <= q.Origin.UnixNano() || e.ts > q.End.UnixNano() {
					continue
				}
				keep := true
				for _, c := range q.Contains {
					keep = keep && strings.Contains(e.line, c)
				}
				for _, c := range q.NotContains {
					keep = keep && !strings.Contains(e.line, c)
				}
				if !keep {
					continue
				}
				meta := make([]string, len(q.Metadata))
				for i, name := range q.Metadata {
					meta[i] = e.metadata.Get(name)
				}
				k := key{si, (e.ts - q.Origin.UnixNano() - 1) / q.Step.Nanoseconds(), strings.Join(meta, "\xff")}
				i, ok := index[k]
				if !ok {
					i = len(out)
					index[k] = i
					out = append(out, EntryCount{Stream: si, Bin: k.bin, Metadata: meta})
				}
				out[i].Entries++
				out[i].Bytes += int64(len(e.line))
			}
		}
	}
	return out, nil
}

// TestCountMatchesScan checks that a sum of range aggregations counted in
// the source answers exactly as reading the entries does, over random
// streams, windows, offsets, steps, groupings and line filters, range and
// instant queries alike.
func TestCountMatchesScan(t *testing.T) {
	e := NewEngine(EngineOptions{})
	compared := 0
	for seed := range uint64(40) {
		r := rand.New(rand.NewPCG(seed, 3))
		mem := randomSource(r)
		// Lines stamped exactly on window and bin edges, where an off-by-one
		// shows.
		edges := &mem.streams[0]
		for k := range 160 {
			edges.entries = append(edges.entries, memEntry{ts: t0.Add(time.Duration(k) * 30 * time.Second).UnixNano(), line: "edge x1"})
		}
		slices.SortStableFunc(edges.entries, func(a, b memEntry) int { return cmp.Compare(a.ts, b.ts) })
		counting := &countingSource{memSource: mem}
		rng := time.Duration(1+r.IntN(20)) * time.Minute
		if r.IntN(3) == 0 {
			rng += 17 * time.Second // a step and range of small common divisor
		}
		off := time.Duration(r.IntN(3)) * 7 * time.Minute
		step := time.Duration(1+r.IntN(10)) * 30 * time.Second
		window := fmt.Sprintf("[%s] offset %s", model.Duration(rng), model.Duration(off))
		filter := []string{``, `|= ""`, `|= "x1"`, `!= "level=3"`, `|= "msg" != "x2" | drop __error__`}[r.IntN(5)]
		sel := `{app=~"app.*"} ` + filter
		op := []string{"count_over_time", "rate", "bytes_over_time", "bytes_rate"}[r.IntN(4)]
		by := []string{"", "by (app)", "by (detected_level)", "by (app, detected_level)", "by (n, env)", "by (nothere)"}[r.IntN(6)]
		q := fmt.Sprintf("sum %s (%s(%s %s))", by, op, sel, window)
		for _, p := range []Params{
			{Query: q, Start: t0.Add(-10 * time.Minute), End: t0.Add(70 * time.Minute), Step: step},
			{Query: q, Start: t0.Add(30 * time.Minute), End: t0.Add(30 * time.Minute)},
			{Query: "topk(2, " + q + ")", Start: t0, End: t0.Add(time.Hour), Step: step},
		} {
			want, err := e.Query(context.Background(), mem, p)
			if err != nil {
				t.Fatalf("seed %d: %s: %v", seed, p.Query, err)
			}
			before := counting.counted
			got, err := e.Query(context.Background(), counting, p)
			if err != nil {
				t.Fatalf("seed %d: %s counted: %v", seed, p.Query, err)
			}
			if counting.counted == before {
				t.Fatalf("seed %d: %s was not counted in the source", seed, p.Query)
			}
			want.Stats, got.Stats = Stats{}, Stats{}
			if !reflect.DeepEqual(want, got) {
				t.Fatalf("seed %d: %s\ncounted: %+v\nread:    %+v", seed, p.Query, got, want)
			}
			compared++
		}
	}
	t.Logf("%d queries compared", compared)
}

// TestCountOnlyWhenExact checks the queries a source must not count: their
// answer depends on more than the lines' number, size and labels.
func TestCountOnlyWhenExact(t *testing.T) {
	e := NewEngine(EngineOptions{})
	src := &countingSource{memSource: randomSource(rand.New(rand.NewPCG(1, 1)))}
	for _, q := range []string{
		`count_over_time({app=~"app.*"}[5m])`,                            // no sum: one series per metadata set
		`sum without (n) (count_over_time({app=~"app.*"}[5m]))`,          // without keeps the metadata
		`avg by (app) (count_over_time({app=~"app.*"}[5m]))`,             // not a sum
		`sum by (app) (count_over_time({app=~"app.*"} |~ "x1.*" [5m]))`,  // a regexp
		`sum by (level) (count_over_time({app=~"app.*"} | logfmt [5m]))`, // a parser
		`sum by (app) (count_over_time({app=~"app.*"} | drop n [5m]))`,   // drops a label
	} {
		if _, err := e.Query(context.Background(), src, Params{Query: q, Start: t0, End: t0.Add(time.Hour), Step: time.Minute}); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if src.counted != 0 {
			t.Fatalf("%s was counted in the source", q)
		}
	}
}
