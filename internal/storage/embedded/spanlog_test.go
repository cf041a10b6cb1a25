package embedded

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/attrenc"
	"github.com/vigil-observability/vigil/internal/storage/storagetest"
)

func openTestStore(t *testing.T, dir string) *SpanLogStore {
	t.Helper()
	s, err := OpenSpanLogStore(context.Background(), SpanLogOptions{Dir: dir, MemoryLimit: "256MB", Threads: 2})
	if err != nil {
		t.Fatalf("OpenSpanLogStore: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestSpanLogConformance(t *testing.T) {
	storagetest.RunSpanLogStore(t, func(t *testing.T) storage.SpanLogStore {
		return openTestStore(t, t.TempDir())
	})
}

func TestSpanLogReopen(t *testing.T) {
	storagetest.RunReopen(t, func(t *testing.T, dir string) storage.SpanLogStore {
		return openTestStore(t, dir)
	})
}

// fixedClock is a settable clock for SpanLogOptions.Now.
type fixedClock struct{ t time.Time }

func (c *fixedClock) now() time.Time { return c.t }

func openAt(t *testing.T, dir string, clock *fixedClock, reg prometheus.Registerer) *SpanLogStore {
	t.Helper()
	s, err := OpenSpanLogStore(t.Context(), SpanLogOptions{
		Dir: dir, MemoryLimit: "256MB", Threads: 1, Now: clock.now, Registerer: reg,
	})
	if err != nil {
		t.Fatalf("OpenSpanLogStore: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func oneSpan(id pcommon.TraceID, at time.Time, attrs map[string]any) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "svc")
	sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetTraceID(id)
	sp.SetSpanID(pcommon.SpanID{1, 2, 3})
	sp.SetName("op")
	sp.SetStartTimestamp(pcommon.NewTimestampFromTime(at))
	sp.SetEndTimestamp(pcommon.NewTimestampFromTime(at.Add(time.Millisecond)))
	if err := sp.Attributes().FromRaw(attrs); err != nil {
		panic(err)
	}
	return td
}

func partFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), partSuffix) {
			names = append(names, e.Name())
		}
	}
	return names
}

func TestSpanLogHotColumns(t *testing.T) {
	clock := &fixedClock{time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC)}
	s := openAt(t, t.TempDir(), clock, nil)
	ctx := t.Context()
	tests := []struct {
		name          string
		attrs         map[string]any
		method, route sql.NullString
		status        sql.NullInt64
		keys          uint8
		leftInJSON    []string
	}{
		{"stable", map[string]any{"http.request.method": "GET", "http.route": "/a/{id}", "http.response.status_code": int64(404), "url.path": "/a/7"},
			sql.NullString{String: "GET", Valid: true}, sql.NullString{String: "/a/{id}", Valid: true}, sql.NullInt64{Int64: 404, Valid: true},
			httpMethodStable | httpRoute | httpStatusStable, []string{"url.path"}},
		{"legacy", map[string]any{"http.method": "POST", "http.status_code": int64(201)},
			sql.NullString{String: "POST", Valid: true}, sql.NullString{}, sql.NullInt64{Int64: 201, Valid: true},
			httpMethodLegacy | httpStatusLegacy, nil},
		{"both: stable wins, legacy stays", map[string]any{"http.request.method": "PUT", "http.method": "PATCH"},
			sql.NullString{String: "PUT", Valid: true}, sql.NullString{}, sql.NullInt64{},
			httpMethodStable, []string{"http.method"}},
		{"wrong types stay attributes", map[string]any{"http.request.method": int64(1), "http.route": true, "http.response.status_code": "200", "http.status_code": int64(70000)},
			sql.NullString{}, sql.NullString{}, sql.NullInt64{}, 0,
			[]string{"http.request.method", "http.response.status_code", "http.route", "http.status_code"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := pcommon.TraceID{0x11, byte(i), 15: 1}
			td := oneSpan(id, clock.t.Add(-time.Hour), tt.attrs)
			if err := s.WriteTraces(ctx, td); err != nil {
				t.Fatal(err)
			}
			hi, lo := attrenc.TraceIDToUints(id)
			p := s.snapshot()[0]
			var (
				method, route sql.NullString
				status        sql.NullInt64
				keys          uint8
				service       string
				attrs         string
			)
			err := s.db.QueryRowContext(ctx, fmt.Sprintf(
				"SELECT http_method, http_route, http_status_code, http_keys, service, attributes FROM %s.spans WHERE trace_hi = %d::UBIGINT AND trace_lo = %d::UBIGINT",
				p.alias, hi, lo)).Scan(&method, &route, &status, &keys, &service, &attrs)
			if err != nil {
				t.Fatal(err)
			}
			if method != tt.method || route != tt.route || status != tt.status || keys != tt.keys {
				t.Errorf("columns = %v %v %v keys %b, want %v %v %v keys %b", method, route, status, keys, tt.method, tt.route, tt.status, tt.keys)
			}
			if service != "svc" {
				t.Errorf("service = %q", service)
			}
			var left map[string]any
			if attrs != "" {
				if err := json.Unmarshal([]byte(attrs), &left); err != nil {
					t.Fatalf("attributes %q: %v", attrs, err)
				}
			}
			if got := slices.Sorted(maps.Keys(left)); !slices.Equal(got, tt.leftInJSON) {
				t.Errorf("keys left in attributes = %v, want %v", got, tt.leftInJSON)
			}
			got, err := s.GetTrace(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			storagetest.AssertTracesEqual(t, td, got)
		})
	}
	// The typed JSON is ordinary JSON to DuckDB.
	var path string
	p := s.snapshot()[0]
	if err := s.db.QueryRowContext(ctx, "SELECT attributes->>'$.\"url.path\"' FROM "+p.alias+".spans WHERE http_route = '/a/{id}'").Scan(&path); err != nil {
		t.Fatal(err)
	}
	if path != "/a/7" {
		t.Errorf("json extract = %q, want /a/7", path)
	}
}

func TestSpanLogPartitionsAndRetention(t *testing.T) {
	day := func(d int) time.Time { return time.Date(2025, 3, d, 12, 0, 0, 0, time.UTC) }
	clock := &fixedClock{day(10)}
	dir := t.TempDir()
	s := openAt(t, dir, clock, nil)
	ctx := t.Context()

	// One call touching three days: each day gets its own file.
	td := ptrace.NewTraces()
	for _, d := range []int{8, 9, 10} {
		oneSpan(pcommon.TraceID{byte(d), 15: 1}, day(d), nil).ResourceSpans().MoveAndAppendTo(td.ResourceSpans())
	}
	// Garbage times are clamped into the window retention can hold, not
	// given files of their own.
	oneSpan(pcommon.TraceID{0xee, 15: 1}, time.Unix(0, 1), nil).ResourceSpans().MoveAndAppendTo(td.ResourceSpans())
	oneSpan(pcommon.TraceID{0xef, 15: 1}, day(10).AddDate(5, 0, 0), nil).ResourceSpans().MoveAndAppendTo(td.ResourceSpans())
	if err := s.WriteTraces(ctx, td); err != nil {
		t.Fatal(err)
	}
	ld := plog.NewLogs()
	lrs := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords()
	lrs.AppendEmpty().Body().SetStr("no time at all")
	far := lrs.AppendEmpty()
	far.SetTimestamp(pcommon.NewTimestampFromTime(day(10).AddDate(5, 0, 0)))
	far.Body().SetStr("far future")
	if err := s.WriteLogs(ctx, ld); err != nil {
		t.Fatal(err)
	}
	want := []string{"spanlog-20250303.duckdb", "spanlog-20250308.duckdb", "spanlog-20250309.duckdb", "spanlog-20250310.duckdb", "spanlog-20250311.duckdb"}
	if got := partFiles(t, dir); !slices.Equal(got, want) {
		t.Fatalf("files = %v, want %v", got, want)
	}
	for _, id := range []pcommon.TraceID{{8, 15: 1}, {9, 15: 1}, {10, 15: 1}, {0xee, 15: 1}, {0xef, 15: 1}} {
		if _, err := s.GetTrace(ctx, id); err != nil {
			t.Errorf("GetTrace(%s): %v", id, err)
		}
	}
	// Reads use the stored time range, not the file's day: the clamped
	// record is still found by a range query around its real time.
	n := 0
	for r, err := range s.FindLogs(ctx, storage.LogQuery{Start: day(10).AddDate(4, 0, 0)}) {
		if err != nil {
			t.Fatal(err)
		}
		if r.Body != "far future" {
			t.Errorf("unexpected %q", r.Body)
		}
		n++
	}
	if n != 1 {
		t.Errorf("far-future range query found %d records, want 1", n)
	}

	before := s.DiskBytes()
	dropped, err := s.DropBefore(ctx, day(9))
	if err != nil {
		t.Fatal(err)
	}
	if dropped != 2 {
		t.Errorf("DropBefore dropped %d, want 2", dropped)
	}
	if got := partFiles(t, dir); !slices.Equal(got, want[2:]) {
		t.Errorf("files after drop = %v, want %v", got, want[2:])
	}
	if after := s.DiskBytes(); after >= before {
		t.Errorf("DiskBytes %d after drop, was %d", after, before)
	}
	for _, id := range []pcommon.TraceID{{8, 15: 1}, {0xee, 15: 1}} {
		if _, err := s.GetTrace(ctx, id); !errors.Is(err, storage.ErrTraceNotFound) {
			t.Errorf("GetTrace(%s) after drop: %v", id, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopening after the clock moved applies retention right away.
	clock.t = day(17).Add(6 * time.Hour) // 7d retention keeps 10 March onwards
	s = openAt(t, dir, clock, nil)
	if got := partFiles(t, dir); !slices.Equal(got, want[3:]) {
		t.Errorf("files after reopen = %v, want %v", got, want[3:])
	}
	if _, err := s.GetTrace(ctx, pcommon.TraceID{10, 15: 1}); err != nil {
		t.Errorf("kept day lost: %v", err)
	}
}

func TestSpanLogDiskBytesGauge(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	clock := &fixedClock{time.Now()}
	dir := t.TempDir()
	s := openAt(t, dir, clock, reg)
	if err := s.WriteTraces(t.Context(), oneSpan(pcommon.TraceID{1}, clock.t, nil)); err != nil {
		t.Fatal(err)
	}
	want := s.DiskBytes()
	if want <= 0 {
		t.Fatalf("DiskBytes = %d after a write", want)
	}
	got, err := testutil.GatherAndCount(reg, "vigil_storage_bytes")
	if err != nil || got != 1 {
		t.Fatalf("vigil_storage_bytes series = %d, %v", got, err)
	}
	if v := testutil.ToFloat64(s.gauge); v != float64(s.DiskBytes()) {
		t.Errorf("gauge = %v, DiskBytes = %d", v, s.DiskBytes())
	}
	// Close unregisters, so a store can be reopened against the same registry.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, dir, clock, reg)
	if _, err := s.GetTrace(t.Context(), pcommon.TraceID{1}); err != nil {
		t.Fatal(err)
	}
}

func TestSpanLogMalformedStrings(t *testing.T) {
	clock := &fixedClock{time.Now()}
	s := openAt(t, t.TempDir(), clock, nil)
	td := oneSpan(pcommon.TraceID{7}, clock.t, map[string]any{"bad": "x\xffy"})
	sp := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	sp.SetName("name\xff")
	if err := s.WriteTraces(t.Context(), td); err != nil {
		t.Fatalf("invalid UTF-8 must not fail the batch: %v", err)
	}
	got, err := s.GetTrace(t.Context(), pcommon.TraceID{7})
	if err != nil {
		t.Fatal(err)
	}
	gs := got.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	if gs.Name() != "name\uFFFD" {
		t.Errorf("name = %q, want the invalid byte replaced", gs.Name())
	}
	if v, _ := gs.Attributes().Get("bad"); v.Str() != "x\xffy" {
		t.Errorf("attribute = %q, want bytes kept exactly", v.Str())
	}
}

func TestSpanLogDuckDBSettings(t *testing.T) {
	s, err := OpenSpanLogStore(t.Context(), SpanLogOptions{Dir: t.TempDir(), MemoryLimit: "300MB", Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var mem, threads, ckpt string
	if err := s.db.QueryRowContext(t.Context(),
		"SELECT current_setting('memory_limit'), current_setting('threads')::VARCHAR, current_setting('checkpoint_threshold')").Scan(&mem, &threads, &ckpt); err != nil {
		t.Fatal(err)
	}
	// DuckDB reports limits in its own units (300MB -> "286.1 MiB").
	if !strings.Contains(mem, "286.1 MiB") || threads != "1" || !strings.Contains(ckpt, "122.0 MiB") {
		t.Errorf("memory_limit=%q threads=%q checkpoint_threshold=%q", mem, threads, ckpt)
	}
}

// A day file that stops being written to is checkpointed after
// IdleCheckpoint: its WAL folds into the file and DuckDB lets go of the
// rows it held in memory for it. With a negative IdleCheckpoint the WAL
// stays until CheckpointThreshold.
func TestSpanLogIdleCheckpoint(t *testing.T) {
	for _, tc := range []struct {
		name string
		idle time.Duration
		want bool // checkpointed
	}{
		{"after idle", 50 * time.Millisecond, true},
		{"disabled", -1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := OpenSpanLogStore(t.Context(), SpanLogOptions{Dir: t.TempDir(), Threads: 1, IdleCheckpoint: tc.idle})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			gen := storagetest.NewSpanGen(1, time.Now().Add(-time.Hour))
			if err := s.WriteTraces(t.Context(), gen.Traces(500)); err != nil {
				t.Fatal(err)
			}
			parts := s.snapshot()
			if len(parts) != 1 {
				t.Fatalf("%d day files, want 1", len(parts))
			}
			wal := parts[0].path + ".wal"
			walBytes := func() int64 {
				info, err := os.Stat(wal)
				if err != nil {
					return 0
				}
				return info.Size()
			}
			if walBytes() == 0 {
				t.Fatal("no WAL after a write")
			}
			deadline := time.Now().Add(10 * time.Second)
			if !tc.want {
				deadline = time.Now().Add(300 * time.Millisecond)
			}
			for walBytes() > 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if got := walBytes() == 0; got != tc.want {
				t.Errorf("checkpointed = %v, want %v (WAL %d bytes)", got, tc.want, walBytes())
			}
			// The spans are all there either way.
			var n int
			if err := s.db.QueryRowContext(t.Context(), "SELECT count(*) FROM "+parts[0].alias+".spans").Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 500 {
				t.Errorf("%d spans, want 500", n)
			}
		})
	}
}
