package storagetest

import (
	"embed"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

//go:embed testdata/*.json
var fixtures embed.FS

// FixtureEpoch is the instant the fixtures' timestamps are written around
// (2024-01-01T12:00:00Z). Loaders shift every timestamp by base-FixtureEpoch
// so that the data is recent enough to survive any backend's retention.
var FixtureEpoch = time.Unix(1704110400, 0).UTC()

// Base returns the instant fixtures are shifted to for a run starting at now:
// noon UTC of the previous day. Its fixed place in the day keeps every
// fixture's layout across UTC days (and so across daily partitions) the same
// whatever the time of the run.
func Base(now time.Time) time.Time {
	return now.UTC().Truncate(24 * time.Hour).Add(-12 * time.Hour)
}

// IDs of the fixture traces.
var (
	// RichTraceID is the trace in traces_rich.json with several resources and scopes.
	RichTraceID = mustTraceID("5b8efff798038103d269b633813fc60c")
	// OtherTraceID is the one-span trace that shares traces_rich.json.
	OtherTraceID = mustTraceID("c0ffee00c0ffee00c0ffee00c0ffee00")
	// SplitTraceID is the trace spread over traces_split_a.json and traces_split_b.json.
	SplitTraceID = mustTraceID("4bf92f3577b34da6a3ce929d0e0e4736")
)

// LoadTraces reads testdata/name (OTLP JSON) and shifts its timestamps to base.
func LoadTraces(tb testing.TB, name string, base time.Time) ptrace.Traces {
	tb.Helper()
	raw, err := fixtures.ReadFile("testdata/" + name)
	if err != nil {
		tb.Fatalf("read fixture: %v", err)
	}
	td, err := (&ptrace.JSONUnmarshaler{}).UnmarshalTraces(raw)
	if err != nil {
		tb.Fatalf("decode fixture %s: %v", name, err)
	}
	d := base.Sub(FixtureEpoch)
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, s := range ss.Spans().All() {
				s.SetStartTimestamp(shift(s.StartTimestamp(), d))
				s.SetEndTimestamp(shift(s.EndTimestamp(), d))
				for _, e := range s.Events().All() {
					e.SetTimestamp(shift(e.Timestamp(), d))
				}
			}
		}
	}
	return td
}

// LoadLogs reads testdata/name (OTLP JSON) and shifts its timestamps to base.
func LoadLogs(tb testing.TB, name string, base time.Time) plog.Logs {
	tb.Helper()
	raw, err := fixtures.ReadFile("testdata/" + name)
	if err != nil {
		tb.Fatalf("read fixture: %v", err)
	}
	ld, err := (&plog.JSONUnmarshaler{}).UnmarshalLogs(raw)
	if err != nil {
		tb.Fatalf("decode fixture %s: %v", name, err)
	}
	d := base.Sub(FixtureEpoch)
	for _, rl := range ld.ResourceLogs().All() {
		for _, sl := range rl.ScopeLogs().All() {
			for _, lr := range sl.LogRecords().All() {
				lr.SetTimestamp(shift(lr.Timestamp(), d))
				lr.SetObservedTimestamp(shift(lr.ObservedTimestamp(), d))
			}
		}
	}
	return ld
}

// shift moves ts by d, leaving "unset" (0) unset.
func shift(ts pcommon.Timestamp, d time.Duration) pcommon.Timestamp {
	if ts == 0 {
		return 0
	}
	return pcommon.Timestamp(int64(ts) + int64(d))
}

func mustTraceID(h string) pcommon.TraceID {
	var id pcommon.TraceID
	if len(h) != 32 {
		panic("bad trace id " + h)
	}
	for i := range id {
		id[i] = unhex(h[2*i])<<4 | unhex(h[2*i+1])
	}
	return id
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	panic("bad hex digit")
}
