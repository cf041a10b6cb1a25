package embedded

import (
	"slices"
	"testing"
	"time"

	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/storagetest"
)

func TestLogStreamsAssign(t *testing.T) {
	a := &encodedResource{service: "a", attrs: "{}"}
	a2 := &encodedResource{service: "a", attrs: "{}"} // same values, another batch
	b := &encodedResource{service: "b", attrs: `{"k":"'\x00"}`}
	sc := &encodedScope{name: "s"}
	rows := func(rs ...*encodedResource) []logRow {
		out := make([]logRow, len(rs))
		for i, r := range rs {
			out[i] = logRow{res: r, scope: sc}
		}
		return out
	}
	tests := []struct {
		name string
		run  func(ls *logStreams) []uint32 // the ids seen, in order
		want []uint32
	}{{
		name: "one batch numbers each stream once, by value",
		run: func(ls *logStreams) []uint32 {
			ids, fresh := ls.assign(rows(a, b, a2, a))
			return []uint32{ids[streamPair{a, sc}], ids[streamPair{b, sc}], ids[streamPair{a2, sc}], uint32(len(fresh))}
		},
		want: []uint32{0, 1, 0, 2},
	}, {
		name: "a committed stream keeps its id",
		run: func(ls *logStreams) []uint32 {
			ids, fresh := ls.assign(rows(a))
			ls.learn(fresh)
			again, fresh2 := ls.assign(rows(a2, b))
			return []uint32{ids[streamPair{a, sc}], again[streamPair{a2, sc}], again[streamPair{b, sc}], uint32(len(fresh2))}
		},
		want: []uint32{0, 0, 1, 1},
	}, {
		name: "a failed commit's ids are not given again",
		run: func(ls *logStreams) []uint32 {
			ids, _ := ls.assign(rows(a)) // not learned: its transaction failed
			retry, fresh := ls.assign(rows(a))
			ls.learn(fresh)
			return []uint32{ids[streamPair{a, sc}], retry[streamPair{a, sc}], uint32(len(fresh))}
		},
		want: []uint32{0, 1, 1},
	}, {
		name: "two writers meeting one new stream: the first to commit names it",
		run: func(ls *logStreams) []uint32 {
			w1, f1 := ls.assign(rows(a))
			w2, f2 := ls.assign(rows(a2))
			ls.learn(f2)
			ls.learn(f1)
			after, fresh := ls.assign(rows(a))
			return []uint32{w1[streamPair{a, sc}], w2[streamPair{a2, sc}], after[streamPair{a, sc}], uint32(len(fresh))}
		},
		want: []uint32{0, 1, 1, 0},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.run(&logStreams{ids: map[logStreamKey]uint32{}})
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSpanLogConformanceInlineLogStreams(t *testing.T) {
	storagetest.RunSpanLogStore(t, func(t *testing.T) storage.SpanLogStore {
		s, err := OpenSpanLogStore(t.Context(), SpanLogOptions{Dir: t.TempDir(), MemoryLimit: "256MB", Threads: 2, InlineLogStreams: true})
		if err != nil {
			t.Fatalf("OpenSpanLogStore: %v", err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

// A day file in the layout before log_streams is still read and written
// in its layout after a restart, beside a new day in the streams layout,
// and a stream keeps its id across a restart.
func TestLogStreamsLayouts(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	open := func(inline bool) *SpanLogStore {
		s, err := OpenSpanLogStore(ctx, SpanLogOptions{Dir: dir, MemoryLimit: "256MB", Threads: 2, InlineLogStreams: inline})
		if err != nil {
			t.Fatalf("OpenSpanLogStore: %v", err)
		}
		return s
	}
	oldDay := time.Now().UTC().Add(-30 * time.Hour)
	newDay := time.Now().UTC().Add(-time.Hour)
	if oldDay.Truncate(24 * time.Hour).Equal(newDay.Truncate(24 * time.Hour)) {
		oldDay = oldDay.Add(-24 * time.Hour)
	}
	write := func(s *SpanLogStore, at time.Time, tag string) {
		t.Helper()
		if err := s.WriteLogs(ctx, logsWithResources(at, tag, "")); err != nil {
			t.Fatalf("WriteLogs %s: %v", tag, err)
		}
	}
	s := open(true)
	write(s, oldDay, "old")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	for round := range 2 {
		s = open(false)
		write(s, oldDay.Add(time.Duration(round+1)*time.Minute), "old")
		write(s, newDay.Add(time.Duration(round)*time.Minute), "new")
		for _, p := range s.snapshot() {
			if inline := p.day == oldDay.Unix()/86400; (p.streams == nil) != inline {
				t.Errorf("day %d: streams layout %v, want %v", p.day, p.streams != nil, !inline)
			}
		}
		var bodies []string
		for rec, err := range s.FindLogs(ctx, storage.LogQuery{Service: "svc-1", Limit: 1000}) {
			if err != nil {
				t.Fatal(err)
			}
			if rec.Service != "svc-1" || rec.ResourceAttributes["host.name"] == nil || rec.ResourceAttributes["service.name"] != "svc-1" || rec.ScopeName == "" {
				t.Errorf("record %q: service %q, resource %v, scope %q", rec.Body, rec.Service, rec.ResourceAttributes, rec.ScopeName)
			}
			bodies = append(bodies, rec.Body)
		}
		// Each write holds two records of svc-1: the first old one and,
		// per round, one old and one new.
		if want := 2 + 4*(round+1); len(bodies) != want {
			t.Errorf("round %d: %d records of svc-1, want %d: %v", round, len(bodies), want, bodies)
		}
		streams, err := s.LogStreams(ctx, storage.LogQuery{})
		if err != nil {
			t.Fatal(err)
		}
		// One stream per resource whatever the file's layout: the key
		// hashes the same values.
		if len(streams) != 6 {
			t.Errorf("round %d: %d streams, want 6 (3 resources, old and new): %+v", round, len(streams), streams)
		}
		// The new day's writes repeat its streams: each is in
		// log_streams once (3 resources × 2 scopes), across the restart
		// too.
		for _, p := range s.snapshot() {
			if p.streams == nil {
				continue
			}
			var n, distinct int
			if err := s.db.QueryRowContext(ctx, "SELECT count(*), count(DISTINCT id) FROM "+p.alias+".log_streams").Scan(&n, &distinct); err != nil {
				t.Fatal(err)
			}
			if n != 6 || distinct != n {
				t.Errorf("round %d: log_streams holds %d rows, %d ids, want 6", round, n, distinct)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
