package limits

import (
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// maxValueDepth bounds how deep sanitizing descends into nested map and
// array values. Anything deeper is left as is: it is still bounded by the
// request size, and recursing without limit would let one request exhaust
// the stack.
const maxValueDepth = 32

// replacementChar replaces each run of invalid UTF-8 bytes.
const replacementChar = "\uFFFD"

// valueSanitizer applies the per-item fixes shared by every signal and
// records them in a Report. It is built once per batch.
type valueSanitizer struct {
	maxValueLen int
	maxAttrs    int
	r           *Report
}

func newValueSanitizer(l Limits, r *Report) valueSanitizer {
	return valueSanitizer{maxValueLen: l.MaxAttributeValueLength, maxAttrs: l.MaxAttributesPerItem, r: r}
}

// text repairs invalid UTF-8 in s and, if truncate is set, shortens it to the
// value length limit. It reports whether s changed; when it did not, no
// allocation happened.
func (s valueSanitizer) text(v string, truncate bool) (string, bool) {
	changed := false
	if !utf8.ValidString(v) {
		v = strings.ToValidUTF8(v, replacementChar)
		s.r.Alter(ReasonInvalidUTF8, 1)
		changed = true
	}
	if truncate && len(v) > s.maxValueLen {
		// Clone so that the kept prefix does not pin the long original.
		v = strings.Clone(truncateUTF8(v, s.maxValueLen))
		s.r.Alter(ReasonValueTruncated, 1)
		changed = true
	}
	return v, changed
}

// truncateUTF8 cuts s to at most n bytes without splitting a rune.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// name repairs a short string (a name, a version, a trace state) that is
// not subject to the length limit.
func (s valueSanitizer) name(v string, set func(string)) {
	if fixed, changed := s.text(v, false); changed {
		set(fixed)
	}
}

// attributes fixes every key and value of m and drops the attributes past
// the per-item limit. It returns how many attributes were dropped so the
// caller can add them to the item's dropped_attributes_count.
func (s valueSanitizer) attributes(m pcommon.Map) uint32 {
	var dropped int
	if n := m.Len(); n > s.maxAttrs {
		kept := 0
		m.RemoveIf(func(string, pcommon.Value) bool {
			kept++
			return kept > s.maxAttrs
		})
		dropped = n - s.maxAttrs
		s.r.Alter(ReasonTooManyAttributes, dropped)
	}
	s.kvlist(m, 0)
	return uint32(min(dropped, math.MaxUint32))
}

// kvlist fixes the keys and values of m (an attribute map or a nested
// key-value list value).
func (s valueSanitizer) kvlist(m pcommon.Map, depth int) {
	badKeys := 0
	m.Range(func(k string, v pcommon.Value) bool {
		if !utf8.ValidString(k) {
			badKeys++
		}
		s.value(v, depth)
		return true
	})
	if badKeys > 0 {
		s.rekey(m)
		s.r.Alter(ReasonInvalidUTF8, badKeys)
	}
}

// rekey rebuilds m with every key made valid UTF-8. pdata offers no way to
// rename a key in place, and this is rare enough that a copy is fine.
func (s valueSanitizer) rekey(m pcommon.Map) {
	fixed := pcommon.NewMap()
	fixed.EnsureCapacity(m.Len())
	m.Range(func(k string, v pcommon.Value) bool {
		v.MoveTo(fixed.PutEmpty(strings.ToValidUTF8(k, replacementChar)))
		return true
	})
	fixed.MoveTo(m)
}

// value fixes a string value (UTF-8 and length) and descends into maps and
// arrays.
func (s valueSanitizer) value(v pcommon.Value, depth int) {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		if fixed, changed := s.text(v.Str(), true); changed {
			v.SetStr(fixed)
		}
	case pcommon.ValueTypeMap:
		if depth < maxValueDepth {
			s.kvlist(v.Map(), depth+1)
		}
	case pcommon.ValueTypeSlice:
		if depth < maxValueDepth {
			sl := v.Slice()
			for i := range sl.Len() {
				s.value(sl.At(i), depth+1)
			}
		}
	default:
		// Numbers, booleans and bytes need no repair.
	}
}

func (s valueSanitizer) resource(res pcommon.Resource) {
	res.SetDroppedAttributesCount(addDropped(res.DroppedAttributesCount(), s.attributes(res.Attributes())))
}

func (s valueSanitizer) scope(sc pcommon.InstrumentationScope) {
	s.name(sc.Name(), sc.SetName)
	s.name(sc.Version(), sc.SetVersion)
	sc.SetDroppedAttributesCount(addDropped(sc.DroppedAttributesCount(), s.attributes(sc.Attributes())))
}

func (s valueSanitizer) traceState(ts pcommon.TraceState) {
	s.name(ts.AsRaw(), ts.FromRaw)
}

// addDropped adds without wrapping around.
func addDropped(a, b uint32) uint32 {
	if b == 0 {
		return a
	}
	if a > math.MaxUint32-b {
		return math.MaxUint32
	}
	return a + b
}

// timeWindow is the range of acceptable timestamps, in Unix nanoseconds.
type timeWindow struct{ lo, hi uint64 }

func (l Limits) window(now time.Time) timeWindow {
	n := now.UnixNano()
	lo := n - int64(l.MaxPastAge)
	if lo < 0 || lo > n { // before the epoch, or an overflowing MaxPastAge
		lo = 0
	}
	hi := n + int64(l.MaxFutureSkew)
	if hi < n { // overflow
		hi = math.MaxInt64
	}
	return timeWindow{lo: uint64(lo), hi: uint64(hi)}
}

// check returns the rejection reason for an item spanning [start, end], or "".
func (w timeWindow) check(start, end uint64) string {
	if start < w.lo {
		return ReasonTimestampTooOld
	}
	if end > w.hi {
		return ReasonTimestampInFuture
	}
	return ""
}

// CheckTime returns the rejection reason for an item at t (its
// timestamp, or now when it has none), or "" when l keeps it: the test
// SanitizeLogs applies, for receivers that answer per item.
func (l Limits) CheckTime(t, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	// UnixNano is undefined outside 1678 to 2262.
	switch {
	case t.Year() < 1970:
		return ReasonTimestampTooOld
	case t.Year() > 2200:
		return ReasonTimestampInFuture
	}
	ns := t.UnixNano()
	return l.WithDefaults().window(now).check(uint64(ns), uint64(ns))
}
