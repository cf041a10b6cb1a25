package limits

import (
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
)

// SanitizeLogs validates ld in place against l (zero fields meaning their
// defaults) and reports what it did. A record's time is its timestamp, or
// its observed timestamp when the timestamp is unset; a record with neither
// gets now as its observed timestamp. Records whose time is older than
// MaxPastAge or further than MaxFutureSkew ahead of now are dropped. In the
// records it keeps it repairs invalid UTF-8, truncates long string bodies
// and attribute values, and drops the attributes past MaxAttributesPerItem.
// Scopes and resources left without records are removed. A batch that needs
// no fixing is not allocated for.
func (l Limits) SanitizeLogs(ld plog.Logs, now time.Time) Report {
	l = l.WithDefaults()
	r := Report{Item: "log records"}
	s := newValueSanitizer(l, &r)
	w := l.window(now)
	nowTS := pcommon.NewTimestampFromTime(now)
	ld.ResourceLogs().RemoveIf(func(rl plog.ResourceLogs) bool {
		rl.ScopeLogs().RemoveIf(func(sl plog.ScopeLogs) bool {
			sl.LogRecords().RemoveIf(func(lr plog.LogRecord) bool {
				ts := lr.Timestamp()
				if ts == 0 {
					ts = lr.ObservedTimestamp()
				}
				if ts == 0 {
					lr.SetObservedTimestamp(nowTS)
					ts = nowTS
				}
				if reason := w.check(uint64(ts), uint64(ts)); reason != "" {
					r.Reject(reason, 1)
					return true
				}
				s.logRecord(lr)
				return false
			})
			if sl.LogRecords().Len() == 0 {
				return true
			}
			s.scope(sl.Scope())
			return false
		})
		if rl.ScopeLogs().Len() == 0 {
			return true
		}
		s.resource(rl.Resource())
		return false
	})
	return r
}

// logRecord fixes the strings, body and attributes of a record that is kept.
func (s valueSanitizer) logRecord(lr plog.LogRecord) {
	s.name(lr.SeverityText(), lr.SetSeverityText)
	s.name(lr.EventName(), lr.SetEventName)
	s.value(lr.Body(), 0)
	lr.SetDroppedAttributesCount(addDropped(lr.DroppedAttributesCount(), s.attributes(lr.Attributes())))
}
