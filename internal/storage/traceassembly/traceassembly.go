// Package traceassembly turns the stored rows of one trace back into
// ptrace.Traces, the one place every backend does it.
//
// Writes are at least once: an export that timed out after its spans were
// stored is sent again, and a backend keeps both copies. The assembler
// keeps one span per span id. When the copies differ (a buggy SDK, or an id
// collision), the winner is chosen from the rows alone, not from the order
// they were written or read in: ClickHouse keeps no write order and returns
// rows in any order, and every backend must return the same span. The span
// that ends latest wins (the most complete report of it); equal ends fall
// back to comparing the encoded rows, so the choice is still deterministic.
package traceassembly

import (
	"cmp"
	"fmt"
	"strconv"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage/attrenc"
)

// keyServiceName is the resource attribute backends keep in a column of its
// own when it is a plain string.
const keyServiceName = "service.name"

// Row is one stored span with its resource and scope, their maps, events
// and links encoded with attrenc, as the backends keep them.
type Row struct {
	SpanID, ParentID            uint64
	Start, Duration             int64
	Name, TraceState            string
	Kind, StatusCode            uint8
	StatusMessage               string
	Flags                       uint32
	Attributes, Events, Links   string
	DroppedAttributes           uint32
	DroppedEvents, DroppedLinks uint32

	// Service is service.name when the backend moved it out of
	// ResourceAttributes; it is put back unless the attributes hold it.
	Service            string
	ResourceAttributes string
	ResourceDropped    uint32
	ResourceSchemaURL  string

	ScopeName, ScopeVersion, ScopeAttributes string
	ScopeDropped                             uint32
	ScopeSchemaURL                           string

	// Restore, when set, puts back attributes the backend keeps in
	// columns of their own; it runs after Attributes are decoded.
	Restore func(pcommon.Map)
}

// Size is what a row counts against a byte budget: its variable-length
// parts plus a fixed overhead. Backends that size a trace in SQL before
// reading it use the same formula.
func (r *Row) Size() int64 {
	return int64(len(r.Attributes)+len(r.Events)+len(r.Links)+len(r.ResourceAttributes)+len(r.Name)) + RowOverhead
}

// RowOverhead is the fixed part of Size.
const RowOverhead = 64

// compare orders two copies of one span; the greater wins.
func compare(a, b *Row) int {
	return cmp.Or(
		cmp.Compare(a.Start+a.Duration, b.Start+b.Duration),
		cmp.Compare(a.Start, b.Start),
		// The fields of a summary come first (see compareSummary).
		cmp.Compare(a.StatusCode, b.StatusCode),
		cmp.Compare(a.Name, b.Name),
		cmp.Compare(a.Service, b.Service),
		cmp.Compare(a.ParentID, b.ParentID),
		cmp.Compare(a.Attributes, b.Attributes),
		cmp.Compare(a.Events, b.Events),
		cmp.Compare(a.Links, b.Links),
		cmp.Compare(a.StatusMessage, b.StatusMessage),
		cmp.Compare(a.Kind, b.Kind),
		cmp.Compare(a.TraceState, b.TraceState),
		cmp.Compare(a.Flags, b.Flags),
		cmp.Compare(a.DroppedAttributes, b.DroppedAttributes),
		cmp.Compare(a.DroppedEvents, b.DroppedEvents),
		cmp.Compare(a.DroppedLinks, b.DroppedLinks),
		cmp.Compare(a.ResourceAttributes, b.ResourceAttributes),
		cmp.Compare(a.ResourceDropped, b.ResourceDropped),
		cmp.Compare(a.ResourceSchemaURL, b.ResourceSchemaURL),
		cmp.Compare(a.ScopeName, b.ScopeName),
		cmp.Compare(a.ScopeVersion, b.ScopeVersion),
		cmp.Compare(a.ScopeAttributes, b.ScopeAttributes),
		cmp.Compare(a.ScopeDropped, b.ScopeDropped),
		cmp.Compare(a.ScopeSchemaURL, b.ScopeSchemaURL),
	)
}

// Limits bound what an assembler keeps; zero fields are unbounded.
type Limits struct {
	MaxSpans int
	// MaxBytes bounds the summed Size of the spans kept; the first span
	// is always kept.
	MaxBytes int64
}

// Assembler collects the rows of one trace. Rows may come in any order; it
// is not safe for concurrent use.
type Assembler struct {
	id     pcommon.TraceID
	limits Limits
	spans  map[uint64]int // span id → index in rows
	rows   []Row
	bytes  int64
}

// New returns an assembler for trace id.
func New(id pcommon.TraceID, limits Limits) *Assembler {
	return &Assembler{id: id, limits: limits, spans: map[uint64]int{}}
}

// Add takes one row. A copy of a span already held replaces it if it wins
// and otherwise is dropped; either way it does not count against the
// limits, so retried writes never shorten a trace. Add reports false, and
// keeps nothing, when a new span would pass a limit: the caller stops
// reading and marks the trace truncated.
func (a *Assembler) Add(r Row) bool {
	if i, ok := a.spans[r.SpanID]; ok {
		if compare(&r, &a.rows[i]) > 0 {
			a.bytes += r.Size() - a.rows[i].Size()
			a.rows[i] = r
		}
		return true
	}
	size := r.Size()
	if len(a.rows) > 0 {
		if (a.limits.MaxSpans > 0 && len(a.rows) >= a.limits.MaxSpans) ||
			(a.limits.MaxBytes > 0 && a.bytes+size > a.limits.MaxBytes) {
			return false
		}
	}
	a.spans[r.SpanID] = len(a.rows)
	a.rows = append(a.rows, r)
	a.bytes += size
	return true
}

// Spans is the number of distinct spans held.
func (a *Assembler) Spans() int { return len(a.rows) }

// Bytes is the summed Size of the spans held.
func (a *Assembler) Bytes() int64 { return a.bytes }

// Traces builds the trace: spans grouped under one ResourceSpans per
// distinct resource and one ScopeSpans per distinct scope within it, each
// scope's spans in start order. It returns an empty Traces when no row was
// added.
func (a *Assembler) Traces() (ptrace.Traces, error) {
	td := ptrace.NewTraces()
	resources := map[string]ptrace.ResourceSpans{}
	scopes := map[string]ptrace.ScopeSpans{}
	for i := range a.rows {
		r := &a.rows[i]
		rk := r.Service + "\x00" + r.ResourceAttributes + "\x00" + r.ResourceSchemaURL + "\x00" + strconv.FormatUint(uint64(r.ResourceDropped), 10)
		rs, ok := resources[rk]
		if !ok {
			rs = td.ResourceSpans().AppendEmpty()
			rs.SetSchemaUrl(r.ResourceSchemaURL)
			if err := restoreResource(r, rs.Resource()); err != nil {
				return ptrace.Traces{}, fmt.Errorf("trace assembly: resource: %w", err)
			}
			resources[rk] = rs
		}
		sk := rk + "\x01" + r.ScopeName + "\x00" + r.ScopeVersion + "\x00" + r.ScopeAttributes + "\x00" + r.ScopeSchemaURL + "\x00" + strconv.FormatUint(uint64(r.ScopeDropped), 10)
		ss, ok := scopes[sk]
		if !ok {
			ss = rs.ScopeSpans().AppendEmpty()
			ss.SetSchemaUrl(r.ScopeSchemaURL)
			scope := ss.Scope()
			scope.SetName(r.ScopeName)
			scope.SetVersion(r.ScopeVersion)
			scope.SetDroppedAttributesCount(r.ScopeDropped)
			if err := attrenc.DecodeMap(r.ScopeAttributes, scope.Attributes()); err != nil {
				return ptrace.Traces{}, fmt.Errorf("trace assembly: scope: %w", err)
			}
			scopes[sk] = ss
		}
		if err := a.span(r, ss.Spans().AppendEmpty()); err != nil {
			return ptrace.Traces{}, err
		}
	}
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			ss.Spans().Sort(func(a, b ptrace.Span) bool { return a.StartTimestamp() < b.StartTimestamp() })
		}
	}
	return td, nil
}

func (a *Assembler) span(r *Row, sp ptrace.Span) error {
	sp.SetTraceID(a.id)
	sp.SetSpanID(attrenc.UintToSpanID(r.SpanID))
	sp.SetParentSpanID(attrenc.UintToSpanID(r.ParentID))
	sp.TraceState().FromRaw(r.TraceState)
	sp.SetFlags(r.Flags)
	sp.SetName(r.Name)
	sp.SetKind(ptrace.SpanKind(r.Kind))
	sp.SetStartTimestamp(pcommon.Timestamp(r.Start))
	sp.SetEndTimestamp(pcommon.Timestamp(r.Start + r.Duration))
	sp.Status().SetCode(ptrace.StatusCode(r.StatusCode))
	sp.Status().SetMessage(r.StatusMessage)
	sp.SetDroppedAttributesCount(r.DroppedAttributes)
	sp.SetDroppedEventsCount(r.DroppedEvents)
	sp.SetDroppedLinksCount(r.DroppedLinks)
	if err := attrenc.DecodeMap(r.Attributes, sp.Attributes()); err != nil {
		return fmt.Errorf("trace assembly: span attributes: %w", err)
	}
	if r.Restore != nil {
		r.Restore(sp.Attributes())
	}
	if err := attrenc.DecodeEvents(r.Events, sp); err != nil {
		return fmt.Errorf("trace assembly: span events: %w", err)
	}
	if err := attrenc.DecodeLinks(r.Links, sp); err != nil {
		return fmt.Errorf("trace assembly: span links: %w", err)
	}
	return nil
}

// restoreResource rebuilds a resource, putting service.name back when the
// backend moved it into its own column.
func restoreResource(r *Row, res pcommon.Resource) error {
	res.SetDroppedAttributesCount(r.ResourceDropped)
	if err := attrenc.DecodeMap(r.ResourceAttributes, res.Attributes()); err != nil {
		return err
	}
	if r.Service != "" {
		if _, ok := res.Attributes().Get(keyServiceName); !ok {
			res.Attributes().PutStr(keyServiceName, r.Service)
		}
	}
	return nil
}

// Encode turns a span in memory into the Row a backend would store, for
// backends that keep pdata rather than rows.
func Encode(res pcommon.Resource, resSchemaURL string, scope pcommon.InstrumentationScope, scopeSchemaURL string, sp ptrace.Span) Row {
	service, skip := ServiceOf(res)
	return Row{
		SpanID:             attrenc.SpanIDToUint(sp.SpanID()),
		ParentID:           attrenc.SpanIDToUint(sp.ParentSpanID()),
		Start:              int64(sp.StartTimestamp()),
		Duration:           int64(sp.EndTimestamp()) - int64(sp.StartTimestamp()),
		Name:               sp.Name(),
		TraceState:         sp.TraceState().AsRaw(),
		Kind:               uint8(sp.Kind()),
		StatusCode:         uint8(sp.Status().Code()),
		StatusMessage:      sp.Status().Message(),
		Flags:              sp.Flags(),
		Attributes:         string(attrenc.AppendMap(nil, sp.Attributes(), nil)),
		Events:             string(attrenc.AppendEvents(nil, sp.Events(), sp.StartTimestamp())),
		Links:              string(attrenc.AppendLinks(nil, sp.Links())),
		DroppedAttributes:  sp.DroppedAttributesCount(),
		DroppedEvents:      sp.DroppedEventsCount(),
		DroppedLinks:       sp.DroppedLinksCount(),
		Service:            service,
		ResourceAttributes: string(attrenc.AppendMap(nil, res.Attributes(), skip)),
		ResourceDropped:    res.DroppedAttributesCount(),
		ResourceSchemaURL:  resSchemaURL,
		ScopeName:          scope.Name(),
		ScopeVersion:       scope.Version(),
		ScopeAttributes:    string(attrenc.AppendMap(nil, scope.Attributes(), nil)),
		ScopeDropped:       scope.DroppedAttributesCount(),
		ScopeSchemaURL:     scopeSchemaURL,
	}
}

// ServiceOf returns a resource's service.name as text, and, when it is a
// plain string a service column can hold, a skip function that leaves it
// out of the encoded attributes (restoreResource puts it back).
func ServiceOf(res pcommon.Resource) (string, func(string, pcommon.Value) bool) {
	v, ok := res.Attributes().Get(keyServiceName)
	if !ok {
		return "", nil
	}
	if v.Type() == pcommon.ValueTypeStr && v.Str() != "" && utf8.ValidString(v.Str()) {
		return v.Str(), func(k string, _ pcommon.Value) bool { return k == keyServiceName }
	}
	return v.AsString(), nil
}
