package embedded

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
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
	sites  map[string]uint64
	rnd    *rand.Rand
}

// site numbers a function's call site, the same in every profile.
func (w *layoutWorkload) site(name string) uint64 {
	n, ok := w.sites[name]
	if !ok {
		n = uint64(len(w.sites))
		w.sites[name] = n
	}
	return n
}

func newLayoutWorkload(funcs, stacks int) *layoutWorkload {
	w := &layoutWorkload{rnd: rand.New(rand.NewPCG(1, 2)), sites: map[string]uint64{}}
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
				// A call site has the same address and line in every
				// profile of the program.
				site := w.site(name)
				l = &profile.Location{ID: uint64(len(locs) + 1), Address: 0x400000 + site*16, Line: []profile.Line{{Function: f, Line: int64(10 + site%500)}}}
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
// pprof blobs with an index, and normalised rows (a stack table and one
// row per sample: what ProfileStore does). It prints bytes per profile and
// the time of the merged view over the hour; docs/performance.md
// ("Profiles") records the numbers. Set VIGIL_PROFILE_LAYOUT=1 to run it.
func TestProfileLayoutComparison(t *testing.T) {
	if os.Getenv("VIGIL_PROFILE_LAYOUT") == "" {
		t.Skip("set VIGIL_PROFILE_LAYOUT=1 to measure the profile layouts")
	}
	for _, size := range []struct{ funcs, stacks int }{{300, 200}, {3000, 2000}} {
		t.Run(fmt.Sprintf("%d functions", size.funcs), func(t *testing.T) {
			compareProfileLayouts(t, size.funcs, size.stacks)
		})
	}
}

func compareProfileLayouts(t *testing.T, funcs, stacks int) {
	const (
		// Four hours at one upload every 10 s are written, so that
		// DuckDB's row groups fill and its 256 KiB blocks do not dominate;
		// the merged view reads the last hour.
		profiles = 1440
		perHour  = 360
		samples  = 400
	)
	ctx := context.Background()
	w := newLayoutWorkload(funcs, stacks)
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

	cpu, _ := profiletype.Lookup("cpu")
	sel := profileapi.Selection{Service: "shop", Type: cpu, Start: end.Add(-time.Hour + time.Second), End: end}
	spanID := ups[profiles-perHour/2].spans[0]

	// Blobs: the gzipped pprof and an index in one table; a merged view
	// parses every blob of the range and merges them with pprof's Merge.
	bdir := t.TempDir()
	bconn, err := duckdb.NewConnector(filepath.Join(bdir, "blobs.duckdb")+"?"+url.Values{"memory_limit": {"128MB"}, "threads": {"1"}}.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	bdb := sql.OpenDB(bconn)
	defer bdb.Close()
	if _, err := bdb.ExecContext(ctx, `CREATE TABLE profiles (service VARCHAR, kind VARCHAR, start_ns BIGINT, end_ns BIGINT, labels VARCHAR, span_ids VARCHAR, data BLOB)`); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for _, u := range ups {
		var buf bytes.Buffer
		if err := u.p.Write(&buf); err != nil {
			t.Fatal(err)
		}
		if _, err := bdb.ExecContext(ctx, `INSERT INTO profiles VALUES ('shop', 'cpu', ?, ?, '', ?, ?)`,
			u.end.Add(-10*time.Second).UnixNano(), u.end.UnixNano(), "|"+strings.Join(u.spans, "|")+"|", buf.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	blobWrite := time.Since(start)
	if _, err := bdb.ExecContext(ctx, "CHECKPOINT"); err != nil {
		t.Fatal(err)
	}
	blobBytes := dirBytes(t, bdir)
	mergeBlobs := func(spanID string) {
		q := `SELECT data FROM profiles WHERE service = 'shop' AND kind = 'cpu' AND end_ns >= ? AND start_ns <= ?`
		args := []any{sel.Start.UnixNano(), sel.End.UnixNano()}
		if spanID != "" {
			q += ` AND contains(span_ids, ?)`
			args = append(args, "|"+spanID+"|")
		}
		rows, err := bdb.QueryContext(ctx, q, args...)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var ps []*profile.Profile
		for rows.Next() {
			var data []byte
			if err := rows.Scan(&data); err != nil {
				t.Fatal(err)
			}
			p, err := profile.ParseData(data)
			if err != nil {
				t.Fatal(err)
			}
			if spanID != "" {
				kept := p.Sample[:0]
				for _, s := range p.Sample {
					if s.HasLabel("span_id", spanID) {
						kept = append(kept, s)
					}
				}
				p.Sample = kept
			}
			ps = append(ps, p)
		}
		m, err := profile.Merge(ps)
		if err != nil {
			t.Fatal(err)
		}
		_ = profileapi.FlameGraph(m, 0.001)
	}
	blobMerge := best(3, func() { mergeBlobs("") })
	blobSpan := best(3, func() { mergeBlobs(spanID) })

	// Rows: ProfileStore.
	rdir := t.TempDir()
	rs, err := OpenProfileStore(ctx, ProfileOptions{Dir: rdir, Retention: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	start = time.Now()
	for _, u := range ups {
		var buf bytes.Buffer
		if err := u.p.Write(&buf); err != nil {
			t.Fatal(err)
		}
		if err := rs.WriteProfiles(ctx, []storage.Profile{{
			Service: "shop", Kind: storage.ProfileCPU, Start: u.end.Add(-10 * time.Second), End: u.end, Data: buf.Bytes(),
		}}); err != nil {
			t.Fatal(err)
		}
	}
	rowWrite := time.Since(start)
	if _, err := rs.db.ExecContext(ctx, "CHECKPOINT"); err != nil {
		t.Fatal(err)
	}
	rowBytes := dirBytes(t, rdir)
	mergeRows := func(spanID string) {
		sel := sel
		sel.SpanID = spanID
		m, err := profileapi.Merge(ctx, rs, sel)
		if err != nil || m.Profile == nil {
			t.Fatalf("merge: %v", err)
		}
		_ = profileapi.FlameGraph(m.Profile, 0.001)
	}
	rowMerge := best(3, func() { mergeRows("") })
	rowSpan := best(3, func() { mergeRows(spanID) })

	t.Logf("%d CPU profiles (%d in the hour merged) of %d samples (%d stacks of 8-38 frames, walks of a call graph of %d functions)", profiles, perHour, samples, stacks, funcs)
	t.Logf("blobs: %6.0f bytes/profile, write %v/profile, merged hour + flame graph %v, one span %v",
		float64(blobBytes)/profiles, blobWrite/profiles, blobMerge, blobSpan)
	t.Logf("rows:  %6.0f bytes/profile, write %v/profile, merged hour + flame graph %v, one span %v",
		float64(rowBytes)/profiles, rowWrite/profiles, rowMerge, rowSpan)
}

// dirBytes is the size of the files in dir.
func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && !e.IsDir() {
			n += fi.Size()
		}
	}
	return n
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
