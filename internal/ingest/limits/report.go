package limits

import (
	"cmp"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Report says what validation did to one batch. Items are either dropped
// (counted in Rejected and Dropped) or kept but altered (counted in Altered).
// The zero value is an empty report; the maps stay nil until something
// happens, so that validating a clean batch allocates nothing.
type Report struct {
	// Item names one unit of the signal in the plural ("spans", "log
	// records"); Message uses it.
	Item string
	// Rejected is the number of items dropped; it equals the sum of Dropped.
	Rejected int
	// Dropped counts dropped items per Reason* constant.
	Dropped map[string]int
	// Altered counts fixes made to kept items per Reason* constant: strings
	// repaired (ReasonInvalidUTF8) or truncated (ReasonValueTruncated), and
	// attributes removed (ReasonTooManyAttributes, one per attribute).
	Altered map[string]int
}

// Reject records n items dropped for reason.
func (r *Report) Reject(reason string, n int) {
	if n <= 0 {
		return
	}
	if r.Dropped == nil {
		r.Dropped = make(map[string]int, 2)
	}
	r.Dropped[reason] += n
	r.Rejected += n
}

// Alter records n fixes made for reason to items that were kept.
func (r *Report) Alter(reason string, n int) {
	if n <= 0 {
		return
	}
	if r.Altered == nil {
		r.Altered = make(map[string]int, 2)
	}
	r.Altered[reason] += n
}

// Merge adds everything recorded in o to r. r.Item is kept unless empty.
func (r *Report) Merge(o Report) {
	if r.Item == "" {
		r.Item = o.Item
	}
	for reason, n := range o.Dropped {
		r.Reject(reason, n)
	}
	for reason, n := range o.Altered {
		r.Alter(reason, n)
	}
}

// Empty reports whether nothing was dropped or altered.
func (r Report) Empty() bool { return r.Rejected == 0 && len(r.Altered) == 0 }

// Message renders the report for a client, as the error_message of an OTLP
// partial success, e.g. "3 spans rejected: 2 invalid_trace_id, 1
// timestamp_too_old; altered: 1 value_truncated". It is empty when the
// report is. Reasons are listed most frequent first, ties by name, so the
// text is deterministic.
func (r Report) Message() string {
	if r.Empty() {
		return ""
	}
	var b strings.Builder
	if r.Rejected > 0 {
		item := r.Item
		if item == "" {
			item = "items"
		}
		b.WriteString(strconv.Itoa(r.Rejected))
		b.WriteByte(' ')
		b.WriteString(item)
		b.WriteString(" rejected: ")
		writeReasons(&b, r.Dropped)
	}
	if len(r.Altered) > 0 {
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		b.WriteString("altered: ")
		writeReasons(&b, r.Altered)
	}
	return b.String()
}

func writeReasons(b *strings.Builder, counts map[string]int) {
	reasons := slices.SortedFunc(maps.Keys(counts), func(x, y string) int {
		if c := cmp.Compare(counts[y], counts[x]); c != 0 {
			return c
		}
		return strings.Compare(x, y)
	})
	for i, reason := range reasons {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(counts[reason]))
		b.WriteByte(' ')
		b.WriteString(reason)
	}
}
