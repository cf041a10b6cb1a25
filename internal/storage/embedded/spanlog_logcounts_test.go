package embedded

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/vigil-observability/vigil/internal/storage"
)

// countRecord is what the log count tests wrote, to count it again.
type countRecord struct {
	service string
	ts      int64
	sev     plog.SeverityNumber
	sevText string
	bytes   int64
}

// writeCountRecords writes records of two services over six seconds from
// base, many of them on or one nanosecond beside a second's edge, where
// the summary's seconds and the queries' ranges meet.
func writeCountRecords(t *testing.T, s *SpanLogStore, base time.Time) []countRecord {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	sevs := []struct {
		n    plog.SeverityNumber
		text string
	}{{plog.SeverityNumberInfo, "INFO"}, {plog.SeverityNumberError, "ERROR"}, {0, "weird"}, {0, ""}, {30, "beyond"}}
	var out []countRecord
	for batch := range 8 {
		ld := plog.NewLogs()
		for _, svc := range []string{"a", "b"} {
			rl := ld.ResourceLogs().AppendEmpty()
			rl.Resource().Attributes().PutStr("service.name", svc)
			rl.Resource().Attributes().PutStr("host.name", fmt.Sprint("h", batch%2))
			recs := rl.ScopeLogs().AppendEmpty().LogRecords()
			for range 100 {
				var off int64
				switch rng.IntN(3) {
				case 0:
					off = rng.Int64N(6 * int64(time.Second))
				default:
					off = rng.Int64N(7)*int64(time.Second) + rng.Int64N(3) - 1
				}
				sev := sevs[rng.IntN(len(sevs))]
				body := strings.Repeat("x", rng.IntN(40))
				lr := recs.AppendEmpty()
				lr.SetTimestamp(pcommon.Timestamp(base.UnixNano() + off))
				lr.SetSeverityNumber(sev.n)
				lr.SetSeverityText(sev.text)
				lr.Body().SetStr(body)
				out = append(out, countRecord{svc, base.UnixNano() + off, sev.n, sev.text, int64(len(body))})
			}
		}
		if err := s.WriteLogs(t.Context(), ld); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// checkLogCounts compares LogStreams and CountLogs over many ranges, on
// and off second edges, with the written records counted here.
func checkLogCounts(t *testing.T, s *SpanLogStore, base time.Time, recs []countRecord) {
	t.Helper()
	ctx := t.Context()
	all, err := s.LogStreams(ctx, storage.LogQuery{})
	if err != nil {
		t.Fatal(err)
	}
	serviceOf := map[string]string{}
	var keys []string
	var total int64
	for _, st := range all {
		serviceOf[st.Key] = st.Service
		keys = append(keys, st.Key)
		total += st.Entries
	}
	if total != int64(len(recs)) {
		t.Fatalf("LogStreams over all time counted %d records, want %d", total, len(recs))
	}
	b := base.UnixNano()
	sec := int64(time.Second)
	edges := []int64{-sec, 0, 1, -1, sec / 2, 2 * sec, 2*sec + 1, 2*sec - 1, 3 * sec, 5*sec + 1, 6 * sec, 6*sec + 1, 7 * sec}
	for _, lo := range edges {
		for _, hi := range edges {
			if hi <= lo {
				continue
			}
			start, end := b+lo, b+hi
			// LogStreams: [start, end), by service.
			got, err := s.LogStreams(ctx, storage.LogQuery{Start: time.Unix(0, start), End: time.Unix(0, end)})
			if err != nil {
				t.Fatal(err)
			}
			want := map[string][2]int64{}
			for _, r := range recs {
				if r.ts >= start && r.ts < end {
					w := want[r.service]
					want[r.service] = [2]int64{w[0] + 1, w[1] + r.bytes}
				}
			}
			have := map[string][2]int64{}
			for _, st := range got {
				h := have[st.Service]
				have[st.Service] = [2]int64{h[0] + st.Entries, h[1] + st.Bytes}
			}
			if fmt.Sprint(have) != fmt.Sprint(want) {
				t.Errorf("LogStreams [%d, %d) from base: %v, want %v", lo, hi, have, want)
			}
			// CountLogs: (start, end] in bins of 1s, 2s and 1.5s from
			// start, and from a whole second before it.
			for _, c := range []struct{ origin, step int64 }{
				{start, sec}, {start, 2 * sec}, {start, 3 * sec / 2},
				{floorDiv(start, sec)*sec - sec, sec}, {floorDiv(start, sec)*sec - sec, 2 * sec},
				// One bin for the whole range, which the totals in
				// memory answer when it holds the whole day file.
				{start, end - start},
			} {
				origin, step := c.origin, c.step
				counts, err := s.CountLogs(ctx, storage.LogCountQuery{Streams: keys, Origin: time.Unix(0, origin), Step: time.Duration(step),
					Start: time.Unix(0, start), End: time.Unix(0, end)})
				if err != nil {
					t.Fatal(err)
				}
				want := map[string][2]int64{}
				for _, r := range recs {
					if r.ts > start && r.ts <= end {
						band, text := storage.Severity(0), r.sevText
						if r.sev >= 1 && r.sev <= 24 {
							band, text = storage.Severity((r.sev+3)/4), ""
						}
						k := fmt.Sprint(r.service, " ", floorDiv(r.ts-origin-1, step), " ", band, " ", text)
						w := want[k]
						want[k] = [2]int64{w[0] + 1, w[1] + r.bytes}
					}
				}
				have := map[string][2]int64{}
				for _, c := range counts {
					k := fmt.Sprint(serviceOf[c.Stream], " ", c.Bin, " ", c.Severity, " ", c.SeverityText)
					h := have[k]
					have[k] = [2]int64{h[0] + c.Entries, h[1] + c.Bytes}
				}
				if fmt.Sprint(have) != fmt.Sprint(want) {
					t.Errorf("CountLogs (%d, %d] from base, origin %d, step %d: %v, want %v", lo, hi, origin-b, step, have, want)
				}
			}
		}
	}
}

// TestLogCountSummary pins that the counts read from the summary and the
// edges equal those of the records, on and off second edges, and that a
// day file written before the summary existed gets it filled on opening.
func TestLogCountSummary(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	recs := writeCountRecords(t, s, base)
	checkLogCounts(t, s, base, recs)
	if err := s.Checkpoint(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkLogCounts(t, s, base, recs)

	// As a file from before the summary: the table is gone.
	for _, p := range s.snapshot() {
		if _, err := s.db.ExecContext(t.Context(), "DROP TABLE "+p.alias+".log_counts"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTestStore(t, dir)
	checkLogCounts(t, s, base, recs)
}

// TestLogCountSummaryDroppedWithDay pins that retention takes a day's
// counts with its records.
func TestLogCountSummaryDroppedWithDay(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	writeCountRecords(t, s, base)
	if _, err := s.DropBefore(context.Background(), base.Add(48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	got, err := s.LogStreams(t.Context(), storage.LogQuery{Start: base.Add(-time.Hour), End: base.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("streams after their day was dropped: %v", got)
	}
}

// TestLogCountTotalsAfterRetention pins that the totals in memory, which
// answer a count over whole day files, lose a dropped day's records and
// keep the others', and are the same after a restart.
func TestLogCountTotalsAfterRetention(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	base := time.Now().Add(-time.Hour).Truncate(time.Hour)
	writeCountRecords(t, s, base.Add(-24*time.Hour))
	recs := writeCountRecords(t, s, base)
	cut := base.Truncate(24 * time.Hour)
	if _, err := s.DropBefore(t.Context(), cut); err != nil {
		t.Fatal(err)
	}
	// Between 01:00 and 02:00 UTC base is midnight, and the records a
	// nanosecond before it are in the day retention dropped.
	recs = slices.DeleteFunc(recs, func(r countRecord) bool { return r.ts < cut.UnixNano() })
	checkLogCounts(t, s, base, recs)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTestStore(t, dir)
	checkLogCounts(t, s, base, recs)
}

// TestLogCountSummaryCompacted pins that compacting the summary, as
// writes go on, keeps its counts and merges the rows of the batches
// written since the last compaction.
func TestLogCountSummaryCompacted(t *testing.T) {
	summaryRows := func(s *SpanLogStore) int {
		total := 0
		for _, p := range s.snapshot() {
			var n int
			if err := s.db.QueryRowContext(t.Context(), "SELECT count(*) FROM "+p.alias+".log_counts").Scan(&n); err != nil {
				t.Fatal(err)
			}
			total += n
		}
		return total
	}
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	plain := openTestStore(t, t.TempDir())
	writeCountRecords(t, plain, base)

	defer func(n int64) { compactLogCountsAfter = n }(compactLogCountsAfter)
	compactLogCountsAfter = 800 // every fourth batch
	s := openTestStore(t, t.TempDir())
	recs := writeCountRecords(t, s, base)
	checkLogCounts(t, s, base, recs)
	if got, uncompacted := summaryRows(s), summaryRows(plain); got >= uncompacted {
		t.Errorf("%d summary rows after compactions, %d without", got, uncompacted)
	}
}
