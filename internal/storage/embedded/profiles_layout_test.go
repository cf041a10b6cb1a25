package embedded

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"
	"github.com/google/pprof/profile"

	"github.com/vigil-observability/vigil/internal/profiletype"
	"github.com/vigil-observability/vigil/internal/query/profileapi"
	"github.com/vigil-observability/vigil/internal/storage"
)

// layoutWorkload is a service's CPU profiles as pyroscope-go uploads them:
// one every 10 s, each of a few hundred samples drawn (skewed, as real
// programs spend most time in few stacks) from a fixed set of stacks
// over a fixed set of functions with Go-length names.
type layoutWorkload struct {
	stacks [][]string
	rnd    *rand.Rand
}

func newLayoutWorkload(funcs, stacks int) *layoutWorkload {
	w := &layoutWorkload{rnd: rand.New(rand.NewPCG(1, 2))}
	names := make([]string, funcs)
	for i := range names {
		names[i] = fmt.Sprintf("github.com/acme/shop/internal/pkg%d.(*Handler%d).Method%d", i%40, i%13, i)
	}
	// Stacks are walks down a call graph where each function calls one
	// of three others, so that stacks share their roots as a program's
	// do (runtime.goexit, the server loop, the handler).
	for range stacks {
		depth := 8 + w.rnd.IntN(30)
		s := make([]string, depth)
		id := 0
		for j := range s {
			s[j] = names[id]
			id = (id*31 + 1 + w.rnd.IntN(3)) % funcs
		}
		w.stacks = append(w.stacks, s)
	}
	return w
}

// profile builds one 10 s CPU profile of n samples; a tenth carry a span id.
func (w *layoutWorkload) profile(end time.Time, n int) (*profile.Profile, []string) {
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		PeriodType: &profile.ValueType{Type: "cpu", Unit: "nanoseconds"}, Period: 10_000_000,
		TimeNanos: end.Add(-10 * time.Second).UnixNano(), DurationNanos: int64(10 * time.Second),
	}
	funcs := map[string]*profile.Function{}
	locs := map[string]*profile.Location{}
	var spans []string
	for range n {
		// Skewed: most samples in the first stacks.
		idx := int(float64(len(w.stacks)) * w.rnd.Float64() * w.rnd.Float64() * w.rnd.Float64())
		st := w.stacks[idx]
		s := &profile.Sample{Value: []int64{1, 10_000_000}}
		for i := len(st) - 1; i >= 0; i-- { // leaf first
			name := st[i]
			l := locs[name]
			if l == nil {
				f := &profile.Function{ID: uint64(len(funcs) + 1), Name: name, SystemName: name, Filename: "/src/" + name[:20] + ".go"}
				funcs[name] = f
				p.Function = append(p.Function, f)
				l = &profile.Location{ID: uint64(len(locs) + 1), Address: uint64(0x400000 + len(locs)*16), Line: []profile.Line{{Function: f, Line: int64(10 + len(locs))}}}
				locs[name] = l
				p.Location = append(p.Location, l)
			}
			s.Location = append(s.Location, l)
		}
		if w.rnd.IntN(10) == 0 {
			id := fmt.Sprintf("%016x", w.rnd.Uint64())
			s.Label = map[string][]string{"span_id": {id}}
			spans = append(spans, id)
		}
		p.Sample = append(p.Sample, s)
	}
	return p, spans
}

// TestProfileLayoutComparison measures the two layouts the profile store
// could use over the same hour of one service's CPU profiles: gzipped
// pprof blobs with an index (what ProfileStore does) and normalised rows
// (a stack table and one row per sample). It prints bytes per profile and
// the time of the merged view over the hour; docs/performance.md
// ("Profiles") records the numbers. Set VIGIL_PROFILE_LAYOUT=1 to run it.
func TestProfileLayoutComparison(t *testing.T) {
	if os.Getenv("VIGIL_PROFILE_LAYOUT") == "" {
		t.Skip("set VIGIL_PROFILE_LAYOUT=1 to measure the profile layouts")
	}
	const (
		profiles = 360 // an hour at one upload every 10 s
		samples  = 400
	)
	ctx := context.Background()
	w := newLayoutWorkload(3000, 2000)
	end := time.Now().Truncate(time.Hour)
	type upload struct {
		p     *profile.Profile
		spans []string
		end   time.Time
	}
	var ups []upload
	for i := range profiles {
		at := end.Add(-time.Duration(profiles-i) * 10 * time.Second)
		p, spans := w.profile(at, samples)
		ups = append(ups, upload{p, spans, at})
	}

	// Blobs.
	dir := t.TempDir()
	bs, err := OpenProfileStore(ctx, ProfileOptions{Dir: dir, Retention: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Close()
	start := time.Now()
	for _, u := range ups {
		var buf bytes.Buffer
		if err := u.p.Write(&buf); err != nil {
			t.Fatal(err)
		}
		if err := bs.WriteProfiles(ctx, []storage.Profile{{
			Service: "shop", Kind: storage.ProfileCPU, Start: u.end.Add(-10 * time.Second), End: u.end,
			SpanIDs: u.spans, Data: buf.Bytes(),
		}}); err != nil {
			t.Fatal(err)
		}
	}
	blobWrite := time.Since(start)
	if _, err := bs.db.ExecContext(ctx, "CHECKPOINT"); err != nil {
		t.Fatal(err)
	}
	blobBytes := bs.DiskBytes()
	cpu, _ := profiletype.Lookup("cpu")
	sel := profileapi.Selection{Service: "shop", Type: cpu, Start: end.Add(-time.Hour), End: end}
	blobMerge := best(3, func() {
		m, err := profileapi.Merge(ctx, bs, sel, 100_000)
		if err != nil || m.Profiles != profiles {
			t.Fatalf("merge: %d profiles, %v", m.Profiles, err)
		}
		_ = profileapi.FlameGraph(m.Profile, 0.001)
	})
	blobSpan := best(3, func() {
		sel := sel
		sel.SpanID = ups[profiles/2].spans[0]
		if _, err := profileapi.Merge(ctx, bs, sel, 100_000); err != nil {
			t.Fatal(err)
		}
	})

	// Normalised rows.
	ndir := t.TempDir()
	cfg := url.Values{"memory_limit": {"128MB"}, "threads": {"1"}}
	conn, err := duckdb.NewConnector(filepath.Join(ndir, "rows.duckdb")+"?"+cfg.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	for _, q := range []string{
		`CREATE TABLE stacks (stack_id UBIGINT, folded VARCHAR)`,
		`CREATE TABLE samples (service VARCHAR, kind VARCHAR, ts BIGINT, stack_id UBIGINT, value BIGINT, span_id VARCHAR)`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[uint64]bool{}
	start = time.Now()
	for _, u := range ups {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		err = c.Raw(func(dc any) error {
			sa, err := duckdb.NewAppender(dc.(driver.Conn), "", "main", "samples")
			if err != nil {
				return err
			}
			sta, err := duckdb.NewAppender(dc.(driver.Conn), "", "main", "stacks")
			if err != nil {
				return err
			}
			for _, s := range u.p.Sample {
				names := make([]string, len(s.Location))
				for i, l := range s.Location {
					names[len(names)-1-i] = l.Line[0].Function.Name
				}
				folded := strings.Join(names, ";")
				h := fnv.New64a()
				_, _ = h.Write([]byte(folded))
				id := h.Sum64()
				if !seen[id] {
					seen[id] = true
					if err := sta.AppendRow(id, folded); err != nil {
						return err
					}
				}
				span := ""
				if v := s.Label["span_id"]; len(v) > 0 {
					span = v[0]
				}
				if err := sa.AppendRow("shop", "cpu", u.end.UnixNano(), id, s.Value[1], span); err != nil {
					return err
				}
			}
			if err := sta.Close(); err != nil {
				return err
			}
			return sa.Close()
		})
		_ = c.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	rowWrite := time.Since(start)
	if _, err := db.ExecContext(ctx, "CHECKPOINT"); err != nil {
		t.Fatal(err)
	}
	var rowBytes int64
	for _, n := range []string{"rows.duckdb", "rows.duckdb.wal"} {
		if fi, err := os.Stat(filepath.Join(ndir, n)); err == nil {
			rowBytes += fi.Size()
		}
	}
	mergeRows := func(extra string, args ...any) {
		rows, err := db.QueryContext(ctx, `SELECT s.folded, m.v FROM (SELECT stack_id, sum(value) AS v FROM samples
			WHERE service = 'shop' AND kind = 'cpu' AND ts BETWEEN ? AND ? `+extra+` GROUP BY stack_id) m JOIN stacks s USING (stack_id)`,
			append([]any{end.Add(-time.Hour).UnixNano(), end.UnixNano()}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		// Build the same flame graph input: a profile of the folded stacks.
		p := &profile.Profile{SampleType: []*profile.ValueType{{Type: "cpu", Unit: "nanoseconds"}}}
		fns := map[string]*profile.Function{}
		for rows.Next() {
			var folded string
			var v int64
			if err := rows.Scan(&folded, &v); err != nil {
				t.Fatal(err)
			}
			s := &profile.Sample{Value: []int64{v}}
			parts := strings.Split(folded, ";")
			for i := len(parts) - 1; i >= 0; i-- {
				f := fns[parts[i]]
				if f == nil {
					f = &profile.Function{ID: uint64(len(fns) + 1), Name: parts[i]}
					fns[parts[i]] = f
				}
				s.Location = append(s.Location, &profile.Location{Line: []profile.Line{{Function: f}}})
			}
			p.Sample = append(p.Sample, s)
		}
		_ = profileapi.FlameGraph(p, 0.001)
	}
	rowMerge := best(3, func() { mergeRows("") })
	rowSpan := best(3, func() { mergeRows("AND span_id = ?", ups[profiles/2].spans[0]) })

	t.Logf("%d CPU profiles of %d samples (2000 stacks of 8-38 frames, walks of a call graph of 3000 functions)", profiles, samples)
	t.Logf("blobs: %6.0f bytes/profile, write %v/profile, merged hour + flame graph %v, one span %v",
		float64(blobBytes)/profiles, blobWrite/profiles, blobMerge, blobSpan)
	t.Logf("rows:  %6.0f bytes/profile, write %v/profile, merged hour + flame graph %v, one span %v",
		float64(rowBytes)/profiles, rowWrite/profiles, rowMerge, rowSpan)
}

// best runs f n times and returns its fastest run.
func best(n int, f func()) time.Duration {
	var b time.Duration
	for i := range n {
		start := time.Now()
		f()
		if d := time.Since(start); i == 0 || d < b {
			b = d
		}
	}
	return b
}
