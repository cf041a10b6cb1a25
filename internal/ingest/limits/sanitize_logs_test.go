package limits

import (
	"maps"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
)

func oneLog(mod func(plog.LogRecord)) plog.Logs {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "checkout")
	lr := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	lr.SetTimestamp(pcommon.NewTimestampFromTime(testNow.Add(-time.Second)))
	lr.Body().SetStr("hello")
	lr.SetSeverityText("INFO")
	if mod != nil {
		mod(lr)
	}
	return ld
}

func TestSanitizeLogs(t *testing.T) {
	ts := func(d time.Duration) pcommon.Timestamp { return pcommon.NewTimestampFromTime(testNow.Add(d)) }
	tests := []struct {
		name     string
		mod      func(plog.LogRecord)
		dropped  map[string]int
		altered  map[string]int
		validate func(t *testing.T, lr plog.LogRecord)
	}{
		{name: "valid record kept"},
		{
			name: "no trace context is fine for logs",
			mod:  func(lr plog.LogRecord) { lr.SetTraceID(pcommon.TraceID{}); lr.SetSpanID(pcommon.SpanID{}) },
		},
		{
			name:    "too old",
			mod:     func(lr plog.LogRecord) { lr.SetTimestamp(ts(-2 * time.Hour)) },
			dropped: map[string]int{ReasonTimestampTooOld: 1},
		},
		{
			name:    "in the future",
			mod:     func(lr plog.LogRecord) { lr.SetTimestamp(ts(2 * time.Minute)) },
			dropped: map[string]int{ReasonTimestampInFuture: 1},
		},
		{
			name: "observed timestamp used when timestamp unset",
			mod: func(lr plog.LogRecord) {
				lr.SetTimestamp(0)
				lr.SetObservedTimestamp(ts(-3 * time.Hour))
			},
			dropped: map[string]int{ReasonTimestampTooOld: 1},
		},
		{
			name: "timestamp wins over observed timestamp",
			mod: func(lr plog.LogRecord) {
				lr.SetObservedTimestamp(ts(-3 * time.Hour))
			},
		},
		{
			name: "neither timestamp: observed set to now",
			mod:  func(lr plog.LogRecord) { lr.SetTimestamp(0) },
			validate: func(t *testing.T, lr plog.LogRecord) {
				if got := lr.ObservedTimestamp().AsTime(); !got.Equal(testNow) {
					t.Errorf("observed timestamp = %v, want %v", got, testNow)
				}
				if lr.Timestamp() != 0 {
					t.Errorf("timestamp changed to %v", lr.Timestamp())
				}
			},
		},
		{
			name:    "long body truncated",
			mod:     func(lr plog.LogRecord) { lr.Body().SetStr("0123456789abc") },
			altered: map[string]int{ReasonValueTruncated: 1},
			validate: func(t *testing.T, lr plog.LogRecord) {
				if got := lr.Body().Str(); got != "01234567" {
					t.Errorf("body = %q", got)
				}
			},
		},
		{
			name: "structured body repaired in depth",
			mod: func(lr plog.LogRecord) {
				m := lr.Body().SetEmptyMap()
				m.PutStr("msg\xff", "ok")
				m.PutEmptyMap("inner").PutStr("s", "0123456789")
			},
			altered: map[string]int{ReasonInvalidUTF8: 1, ReasonValueTruncated: 1},
			validate: func(t *testing.T, lr plog.LogRecord) {
				m := lr.Body().Map()
				if _, ok := m.Get("msg\uFFFD"); !ok {
					t.Errorf("key not repaired: %v", m.AsRaw())
				}
				inner, _ := m.Get("inner")
				if s, _ := inner.Map().Get("s"); s.Str() != "01234567" {
					t.Errorf("nested value = %q", s.Str())
				}
			},
		},
		{
			name: "invalid UTF-8 in severity text and event name",
			mod: func(lr plog.LogRecord) {
				lr.SetSeverityText("WARN\xff")
				lr.SetEventName("\xffev")
			},
			altered: map[string]int{ReasonInvalidUTF8: 2},
			validate: func(t *testing.T, lr plog.LogRecord) {
				if lr.SeverityText() != "WARN\uFFFD" || lr.EventName() != "\uFFFDev" {
					t.Errorf("severity %q event %q", lr.SeverityText(), lr.EventName())
				}
			},
		},
		{
			name: "too many attributes",
			mod: func(lr plog.LogRecord) {
				for _, k := range []string{"a", "b", "c", "d", "e", "f"} {
					lr.Attributes().PutStr(k, k)
				}
			},
			altered: map[string]int{ReasonTooManyAttributes: 3},
			validate: func(t *testing.T, lr plog.LogRecord) {
				if lr.Attributes().Len() != 3 || lr.DroppedAttributesCount() != 3 {
					t.Errorf("%d attributes kept, %d dropped", lr.Attributes().Len(), lr.DroppedAttributesCount())
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ld := oneLog(tt.mod)
			r := testLimits().SanitizeLogs(ld, testNow)
			wantRejected := 0
			for _, n := range tt.dropped {
				wantRejected += n
			}
			if r.Rejected != wantRejected || !maps.Equal(r.Dropped, tt.dropped) {
				t.Errorf("Rejected = %d %v, want %d %v", r.Rejected, r.Dropped, wantRejected, tt.dropped)
			}
			if !maps.Equal(r.Altered, tt.altered) {
				t.Errorf("Altered = %v, want %v", r.Altered, tt.altered)
			}
			if got, want := ld.LogRecordCount(), 1-wantRejected; got != want {
				t.Fatalf("LogRecordCount = %d, want %d", got, want)
			}
			if wantRejected > 0 {
				if ld.ResourceLogs().Len() != 0 {
					t.Errorf("empty resource logs were not removed")
				}
				return
			}
			if tt.validate != nil {
				tt.validate(t, ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0))
			}
		})
	}
}

func TestSanitizeLogsMessage(t *testing.T) {
	ld := oneLog(nil)
	lrs := ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords()
	old := lrs.AppendEmpty()
	old.SetTimestamp(1)
	long := lrs.AppendEmpty()
	long.SetTimestamp(pcommon.NewTimestampFromTime(testNow))
	long.Body().SetStr("0123456789")

	r := testLimits().SanitizeLogs(ld, testNow)

	if ld.LogRecordCount() != 2 {
		t.Errorf("LogRecordCount = %d, want 2", ld.LogRecordCount())
	}
	want := "1 log records rejected: 1 timestamp_too_old; altered: 1 value_truncated"
	if got := r.Message(); got != want {
		t.Errorf("Message() = %q, want %q", got, want)
	}
}

func TestSanitizeLogsCleanBatchDoesNotAllocate(t *testing.T) {
	ld := plog.NewLogs()
	for range 5 {
		rl := ld.ResourceLogs().AppendEmpty()
		rl.Resource().Attributes().PutStr("service.name", "svc")
		sl := rl.ScopeLogs().AppendEmpty()
		for range 20 {
			lr := sl.LogRecords().AppendEmpty()
			lr.SetTimestamp(pcommon.NewTimestampFromTime(testNow))
			lr.Body().SetStr("a log line")
			lr.Attributes().PutStr("k", "v")
		}
	}
	l := testLimits()
	l.MaxAttributeValueLength = 64
	allocs := testing.AllocsPerRun(20, func() {
		if r := l.SanitizeLogs(ld, testNow); !r.Empty() {
			t.Fatalf("clean batch reported %+v", r)
		}
	})
	if allocs != 0 {
		t.Errorf("SanitizeLogs on a clean batch allocated %v times, want 0", allocs)
	}
}
