package logql

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
)

// randomSource makes streams of random lines at random times in the hour
// after t0, some with structured metadata.
func randomSource(r *rand.Rand) *memSource {
	src := &memSource{}
	for s := range 1 + r.IntN(6) {
		st := memStream{labels: labels.FromStrings("app", fmt.Sprintf("app%d", s%3), "env", []string{"prod", "dev"}[s%2], "n", fmt.Sprint(s))}
		var ts []int64
		for range r.IntN(300) {
			ts = append(ts, t0.UnixNano()+r.Int64N(int64(time.Hour)))
		}
		slices.Sort(ts)
		for _, t := range ts {
			md := labels.EmptyLabels()
			if r.IntN(4) == 0 {
				md = labels.FromStrings("detected_level", []string{"info", "error"}[r.IntN(2)])
			}
			st.entries = append(st.entries, memEntry{ts: t, line: fmt.Sprintf("level=%d msg=%q", r.IntN(5), "x"+fmt.Sprint(r.IntN(1000))), metadata: md})
		}
		src.streams = append(src.streams, st)
	}
	return src
}

// TestPropertyRangeAggregations checks the bucketed windows against
// counting every step's window afresh: at each step t, the sum of
// count_over_time and bytes_over_time over (t-range-offset, t-offset] is
// what the entries in it add up to, and rate is count over the range.
func TestPropertyRangeAggregations(t *testing.T) {
	e := NewEngine(EngineOptions{})
	nonEmpty := 0 // windows with entries, lest the property hold vacuously
	for seed := range uint64(30) {
		r := rand.New(rand.NewPCG(seed, 1))
		src := randomSource(r)
		rng := time.Duration(1+r.IntN(20)) * time.Minute
		off := time.Duration(r.IntN(3)) * 7 * time.Minute
		step := time.Duration(1+r.IntN(10)) * 30 * time.Second
		p := Params{Start: t0.Add(-10 * time.Minute), End: t0.Add(70 * time.Minute), Step: step}
		sel := `{app=~"app.*"}`
		window := fmt.Sprintf("[%s] offset %s", model.Duration(rng), model.Duration(off))
		queries := map[string]string{
			"count": `sum(count_over_time(` + sel + window + `))`,
			"bytes": `sum(bytes_over_time(` + sel + window + `))`,
			"rate":  `sum(rate(` + sel + window + `)) * ` + fmt.Sprint(rng.Seconds()),
			"by":    `sum(sum by (app) (count_over_time(` + sel + window + `)))`,
			// * 1 keeps the sum from counting by group as it reads.
			"series": `sum(count_over_time(` + sel + window + `) * 1)`,
		}
		got := map[string]map[int64]float64{}
		for name, q := range queries {
			p.Query = q
			res, err := e.Query(context.Background(), src, p)
			if err != nil {
				t.Fatalf("seed %d: %s: %v", seed, q, err)
			}
			got[name] = map[int64]float64{}
			for _, s := range res.Matrix {
				for _, pt := range s.Floats {
					got[name][pt.T] = pt.F
				}
			}
		}
		for at := p.Start; !at.After(p.End); at = at.Add(step) {
			hi := at.Add(-off).UnixNano()
			lo := hi - rng.Nanoseconds()
			var count, bytes float64
			for _, st := range src.streams {
				for _, en := range st.entries {
					if en.ts > lo && en.ts <= hi {
						count++
						bytes += float64(len(en.line))
					}
				}
			}
			ms := at.UnixMilli()
			if count > 0 {
				nonEmpty++
			}
			if got["count"][ms] != count || got["bytes"][ms] != bytes || got["by"][ms] != count || got["series"][ms] != count || math.Abs(got["rate"][ms]-count) > 1e-9 {
				t.Fatalf("seed %d, range %s offset %s at %s: count %g bytes %g by %g series %g rate*range %g, want count %g bytes %g",
					seed, rng, off, at.Sub(t0), got["count"][ms], got["bytes"][ms], got["by"][ms], got["series"][ms], got["rate"][ms], count, bytes)
			}
		}
	}
	if nonEmpty < 100 {
		t.Fatalf("only %d windows held entries", nonEmpty)
	}
}

// TestPropertyLogLimit checks that a log query returns the limit's first
// entries in its direction, across streams, each stream in order.
func TestPropertyLogLimit(t *testing.T) {
	e := NewEngine(EngineOptions{})
	for seed := range uint64(30) {
		r := rand.New(rand.NewPCG(seed, 2))
		src := randomSource(r)
		limit := 1 + r.IntN(400)
		dir := Direction(r.IntN(2))
		start, end := t0.Add(time.Duration(r.IntN(30))*time.Minute), t0.Add(time.Duration(30+r.IntN(30))*time.Minute)
		res, err := e.Query(context.Background(), src, Params{Query: `{app=~".+"} |= "msg"`, Start: start, End: end, Limit: limit, Direction: dir})
		if err != nil {
			t.Fatal(err)
		}
		var want []int64
		for _, st := range src.streams {
			for _, en := range st.entries {
				if en.ts >= start.UnixNano() && en.ts < end.UnixNano() {
					want = append(want, en.ts)
				}
			}
		}
		slices.Sort(want)
		if dir == Backward {
			slices.Reverse(want)
		}
		want = want[:min(limit, len(want))]
		var got []int64
		for _, s := range res.Streams {
			ordered := slices.IsSortedFunc(s.Entries, func(a, b LogEntry) int {
				if dir == Backward {
					a, b = b, a
				}
				return int(a.Timestamp - b.Timestamp)
			})
			if !ordered {
				t.Fatalf("seed %d: stream %s out of order", seed, s.Labels)
			}
			for _, en := range s.Entries {
				got = append(got, en.Timestamp)
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) || res.Stats.EntriesReturned != int64(len(want)) {
			t.Fatalf("seed %d, limit %d, direction %d: got %d entries, want %d", seed, limit, dir, len(got), len(want))
		}
	}
}
