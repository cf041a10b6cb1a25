package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// postSpans sends one span per (trace id, start) over OTLP/HTTP.
func (s *server) postSpans(t *testing.T, service string, spans map[pcommon.TraceID]time.Time) {
	t.Helper()
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", service)
	ss := rs.ScopeSpans().AppendEmpty().Spans()
	for id, at := range spans {
		sp := ss.AppendEmpty()
		sp.SetTraceID(id)
		sp.SetSpanID(pcommon.SpanID{1})
		sp.SetName("op")
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(at))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(at.Add(time.Millisecond)))
	}
	body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(s.otlpHTTPURL+"/v1/traces", "application/x-protobuf", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("OTLP traces: HTTP %d", resp.StatusCode)
	}
}

// jaegerSearch runs /api/traces and returns the trace ids found.
func (s *server) jaegerSearch(t *testing.T, q url.Values) ([]string, int) {
	t.Helper()
	var r struct {
		Data []struct {
			TraceID string `json:"traceID"`
		} `json:"data"`
	}
	code := s.getJSON(t, "/api/traces?"+q.Encode(), &r)
	ids := make([]string, len(r.Data))
	for i, d := range r.Data {
		ids[i] = d.TraceID
	}
	return ids, code
}

func micros(t time.Time) string { return strconv.FormatInt(t.UnixMicro(), 10) }

// TestTraceSearchLimitsAndSkew: the Jaeger API answers searches at its
// largest limit (more than 1000 traces once answered 500), and finds a span
// dated limits.max_future_skew ahead by a window around its timestamp.
func TestTraceSearchLimitsAndSkew(t *testing.T) {
	s := startServer(t, t.TempDir(), "--config", writeConfig(t, "limits:\n  max_future_skew: 72h\n"))
	now := time.Now()

	bulk := map[pcommon.TraceID]time.Time{}
	for i := range 1600 {
		bulk[pcommon.TraceID{0xb1, byte(i >> 8), byte(i), 15: 1}] = now.Add(-time.Duration(i) * time.Millisecond)
	}
	s.postSpans(t, "bulk", bulk)
	future := pcommon.TraceID{0xf0, 15: 1}
	futureAt := now.Add(50 * time.Hour)
	s.postSpans(t, "skewed", map[pcommon.TraceID]time.Time{future: futureAt})

	q := url.Values{"service": {"bulk"}, "limit": {"1500"}, "start": {micros(now.Add(-time.Hour))}, "end": {micros(now.Add(time.Minute))}}
	waitFor(t, "1500 bulk traces found", 30*time.Second, func() bool {
		ids, code := s.jaegerSearch(t, q)
		if code != http.StatusOK {
			t.Fatalf("search limit=1500: HTTP %d", code)
		}
		return len(ids) == 1500
	})

	for _, w := range []struct {
		name       string
		start, end time.Time
		want       int
	}{
		{"around the span", futureAt.Add(-time.Minute), futureAt.Add(time.Minute), 1},
		{"the hour before it", futureAt.Add(-time.Hour), futureAt.Add(-time.Minute), 0},
	} {
		ids, code := s.jaegerSearch(t, url.Values{"service": {"skewed"}, "start": {micros(w.start)}, "end": {micros(w.end)}})
		if code != http.StatusOK || len(ids) != w.want {
			t.Errorf("future span, window %s: HTTP %d, %d traces, want %d", w.name, code, len(ids), w.want)
		}
	}
	if code := s.getJSON(t, fmt.Sprintf("/api/traces/%s", future), nil); code != http.StatusOK {
		t.Errorf("future span by id: HTTP %d", code)
	}
}
