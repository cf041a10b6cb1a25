package logql

import (
	"context"
	"fmt"
	"iter"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// sliceSource holds entries already merged in time order, so that a
// benchmark measures the engine and not the merging of a test source.
// Its streams match every selector.
type sliceSource struct {
	streams []Stream
	entries []Entry  // oldest first
	lower   []string // the entries' lines in lower case, for Contains
}

func (s *sliceSource) Streams(context.Context, []*Matcher, time.Time, time.Time) ([]Stream, error) {
	return s.streams, nil
}

func (s *sliceSource) Entries(_ context.Context, q EntryQuery) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		n := 0
		for i := range s.entries {
			if !q.Forward {
				i = len(s.entries) - 1 - i
			}
			e := s.entries[i]
			if e.Timestamp < q.Start.UnixNano() || e.Timestamp >= q.End.UnixNano() || !containsAll(s.lower[i], q.Contains) {
				continue
			}
			if !yield(e, nil) {
				return
			}
			if n++; q.Limit > 0 && n >= q.Limit {
				return
			}
		}
	}
}

// benchSource is 100,000 logfmt lines over an hour in 10 streams, one in
// 50 an error, a quarter with structured metadata.
func benchSource() *sliceSource { return benchLines(false) }

// benchLines makes benchSource's lines, in JSON when asked.
func benchLines(asJSON bool) *sliceSource {
	src := &sliceSource{}
	for i := range 10 {
		src.streams = append(src.streams, Stream{ID: fmt.Sprint(i), Labels: labels.FromStrings("app", fmt.Sprintf("app%d", i%5), "env", "prod", "pod", fmt.Sprintf("pod-%d", i))})
	}
	const n = 100_000
	step := int64(time.Hour) / n
	for i := range n {
		level, status := "info", 200
		if i%50 == 0 {
			level, status = "error", 500+i%4
		}
		md := labels.EmptyLabels()
		if i%4 == 0 {
			md = labels.FromStrings("detected_level", level)
		}
		line := fmt.Sprintf(`ts=2026-01-01T00:00:00Z level=%s msg="handled request %d" path=/api/items status=%d duration=%dms`, level, i, status, i%300)
		if asJSON {
			line = fmt.Sprintf(`{"ts":"2026-01-01T00:00:00Z","level":%q,"msg":"handled request %d","http":{"path":"/api/items","status":%d},"duration":"%dms"}`, level, i, status, i%300)
		}
		src.entries = append(src.entries, Entry{
			Stream:    i % 10,
			Timestamp: t0.UnixNano() + int64(i)*step,
			Line:      line,
			Metadata:  md,
		})
		src.lower = append(src.lower, strings.ToLower(src.entries[i].Line))
	}
	return src
}

func BenchmarkQuery(b *testing.B) {
	logfmt, json := benchSource(), benchLines(true)
	hour := Params{Start: t0, End: t0.Add(time.Hour), Step: time.Minute}
	for _, bc := range []struct {
		name  string
		src   *sliceSource
		query string
		limit int
	}{
		{"count_over_time_100k", logfmt, `sum by (app) (count_over_time({env="prod"}[1m]))`, 0},
		{"count_over_time_logfmt_100k", logfmt, `sum by (level) (count_over_time({env="prod"} | logfmt | drop __error__ [5m]))`, 0},
		{"count_over_time_json_100k", json, `sum by (level) (count_over_time({env="prod"} | json | drop __error__ [5m]))`, 0},
		{"filtered_log_query", logfmt, `{env="prod"} |= "error" | logfmt | status >= 502`, 100},
		{"filtered_log_query_json", json, `{env="prod"} |= "error" | json | http_status >= 502`, 100},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := NewEngine(EngineOptions{})
			p := hour
			p.Query, p.Limit = bc.query, bc.limit
			b.ReportAllocs()
			var scanned int64
			for b.Loop() {
				res, err := e.Query(context.Background(), bc.src, p)
				if err != nil {
					b.Fatal(err)
				}
				scanned = res.Stats.EntriesScanned
			}
			b.ReportMetric(float64(scanned), "entries/op")
		})
	}
}

// TestBenchSource keeps the benchmark's queries honest: they run and
// answer what the data holds.
func TestBenchSource(t *testing.T) {
	src := benchSource()
	res, err := NewEngine(EngineOptions{}).Query(context.Background(), src, Params{
		Query: `sum(count_over_time({env="prod"}[1h]))`, Start: t0.Add(time.Hour), End: t0.Add(time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	// The window (t0, t0+1h] leaves out the entry at t0.
	if len(res.Vector) != 1 || res.Vector[0].F != float64(len(src.entries)-1) {
		t.Fatalf("count %v, want %d", res.Vector, len(src.entries)-1)
	}
	res, err = NewEngine(EngineOptions{}).Query(context.Background(), src, Params{
		Query: `{env="prod"} |= "error" | logfmt | status >= 502`, Start: t0, End: t0.Add(time.Hour), Limit: 100,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stats.EntriesReturned != 100 {
		t.Fatalf("returned %d entries, want 100", res.Stats.EntriesReturned)
	}
	for _, s := range res.Streams {
		if st := s.Labels.Get("status"); st != "502" && st != "503" || !strings.Contains(s.Entries[0].Line, "level=error") {
			t.Fatalf("stream %s kept a line it should not: %s", s.Labels, s.Entries[0].Line)
		}
	}
}
