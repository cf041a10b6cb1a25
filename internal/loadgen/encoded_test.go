package loadgen

import (
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

func decodeTraces(t *testing.T, body []byte) ptrace.Traces {
	t.Helper()
	req := ptraceotlp.NewExportRequest()
	if err := req.UnmarshalProto(body); err != nil {
		t.Fatal(err)
	}
	return req.Traces()
}

func spansOf(td ptrace.Traces) []ptrace.Span {
	var out []ptrace.Span
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, sp := range ss.Spans().All() {
				out = append(out, sp)
			}
		}
	}
	return out
}

func TestEncodedTracesRewriteIDsAndTimes(t *testing.T) {
	made := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	// Every span of about one in five traces gets an event: enough traces
	// that some do.
	ring, err := New(7).EncodeTraces(2, 40, 5, made)
	if err != nil {
		t.Fatal(err)
	}
	first := decodeTraces(t, ring.bodies[0].data)
	orig := spansOf(first)
	events := 0
	for _, sp := range orig {
		events += sp.Events().Len()
	}
	if events == 0 {
		t.Fatal("no span with an event: the test would not check event times")
	}

	seen := map[pcommon.TraceID]bool{}
	seenHi := map[[8]byte]bool{}
	for round, shift := range []time.Duration{time.Minute, 2 * time.Minute} {
		sent := made.Add(shift)
		body, n := ring.Next(sent)
		if n != 200 {
			t.Fatalf("round %d: %d spans, want 200", round, n)
		}
		got := spansOf(decodeTraces(t, body))
		if len(got) != len(orig) {
			t.Fatalf("round %d: %d spans decoded, want %d", round, len(got), len(orig))
		}
		byOrig := map[pcommon.TraceID]pcommon.TraceID{}
		for i, sp := range got {
			o := orig[i]
			if sp.SpanID() != o.SpanID() || sp.Name() != o.Name() || sp.Attributes().Len() != o.Attributes().Len() {
				t.Fatalf("round %d span %d: more than ids and times changed", round, i)
			}
			if sp.StartTimestamp().AsTime().Sub(o.StartTimestamp().AsTime()) != shift ||
				sp.EndTimestamp().AsTime().Sub(o.EndTimestamp().AsTime()) != shift {
				t.Fatalf("round %d span %d: times not moved by %v", round, i, shift)
			}
			for j, ev := range sp.Events().All() {
				if ev.Timestamp().AsTime().Sub(o.Events().At(j).Timestamp().AsTime()) != shift {
					t.Fatalf("round %d span %d: event time not moved", round, i)
				}
			}
			// Spans of one trace still share one id, a new one each round.
			if prev, ok := byOrig[o.TraceID()]; ok && prev != sp.TraceID() {
				t.Fatalf("round %d: a trace's spans got different ids", round)
			}
			if _, ok := byOrig[o.TraceID()]; !ok {
				id := sp.TraceID()
				if seen[id] {
					t.Fatalf("round %d: trace id %v sent twice", round, id)
				}
				seen[id] = true
				// Each half is new too: a store may index by part of the id.
				if hi := [8]byte(id[:8]); seenHi[hi] {
					t.Fatalf("round %d: the high half of %v sent twice", round, id)
				} else {
					seenHi[hi] = true
				}
			}
			byOrig[o.TraceID()] = sp.TraceID()
		}
		ring.Next(sent) // the ring's other body, so the next Next is round two
	}
	if len(seen) != 80 {
		t.Fatalf("%d distinct trace ids over two rounds of 40 traces, want 80", len(seen))
	}
}

func BenchmarkEncodedTracesNext(b *testing.B) {
	ring, err := New(1).EncodeTraces(16, 100, 5, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	now := time.Now()
	for b.Loop() {
		ring.Next(now)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/500, "ns/span")
}
