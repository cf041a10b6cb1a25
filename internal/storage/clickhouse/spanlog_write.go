package clickhouse

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage/attrenc"
)

const keyServiceName = "service.name"

// slResource is a resource's column values, computed once per
// ResourceSpans/ResourceLogs and shared by its rows.
type slResource struct {
	service, attrs, schemaURL string
	dropped                   uint32
}

type slScope struct {
	name, version, attrs, schemaURL string
	dropped                         uint32
}

// encodeResource keeps a non-empty string service.name only in the service
// column; restoreResource puts it back.
func encodeResource(r pcommon.Resource, schemaURL string) slResource {
	e := slResource{schemaURL: schemaURL, dropped: r.DroppedAttributesCount()}
	attrs := r.Attributes()
	var skip func(string, pcommon.Value) bool
	if v, ok := attrs.Get(keyServiceName); ok {
		e.service = v.AsString()
		if v.Type() == pcommon.ValueTypeStr && v.Str() != "" && utf8.ValidString(v.Str()) {
			skip = func(k string, _ pcommon.Value) bool { return k == keyServiceName }
		}
	}
	e.attrs = string(attrenc.AppendMap(nil, attrs, skip))
	return e
}

func encodeScope(sc pcommon.InstrumentationScope, schemaURL string) slScope {
	return slScope{
		name: sc.Name(), version: sc.Version(), schemaURL: schemaURL, dropped: sc.DroppedAttributesCount(),
		attrs: string(attrenc.AppendMap(nil, sc.Attributes(), nil)),
	}
}

// restoreResource rebuilds a resource, putting service.name back when
// encodeResource moved it into the service column.
func restoreResource(service, attrs string, dropped uint32, r pcommon.Resource) error {
	r.SetDroppedAttributesCount(dropped)
	if err := attrenc.DecodeMap(attrs, r.Attributes()); err != nil {
		return err
	}
	if service != "" {
		if _, ok := r.Attributes().Get(keyServiceName); !ok {
			r.Attributes().PutStr(keyServiceName, service)
		}
	}
	return nil
}

// slSpan is one span's column values.
type slSpan struct {
	day                     int64
	traceHi, traceLo        uint64
	spanID, parentID        uint64
	start, duration         int64
	res                     *slResource
	scope                   *slScope
	name, statusMsg, state  string
	attrs, events, links    string
	kind, statusCode        uint8
	flags                   uint32
	droppedAttrs, droppedEv uint32
	droppedLk               uint32
}

// WriteTraces inserts td's spans as one block, after their trace index
// rows: if the spans fail, the index rows point at nothing, which GetTrace
// ignores, and the retry writes both again.
func (s *SpanLogStore) WriteTraces(ctx context.Context, td ptrace.Traces) error {
	if err := s.begin(); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	if td.SpanCount() == 0 {
		return nil
	}
	rows := s.spanRows(td)
	// Sorted by the sort key so ClickHouse's per-part sort has less to do.
	slices.SortFunc(rows, func(a, b slSpan) int {
		return cmp.Or(cmp.Compare(a.res.service, b.res.service), cmp.Compare(a.start, b.start))
	})
	if err := s.insert(ctx, traceIndexTable, func(b driver.Batch) error {
		return appendTraceIndex(b, rows)
	}); err != nil {
		return err
	}
	return s.insert(ctx, spansTable, func(b driver.Batch) error {
		for i := range rows {
			r := &rows[i]
			if err := b.Append(dayDate(r.day), r.traceHi, r.traceLo, r.spanID, r.parentID, r.start, r.duration,
				r.res.service, r.name, r.kind, r.statusCode, r.statusMsg, r.state, r.flags,
				r.attrs, r.droppedAttrs, r.events, r.droppedEv, r.links, r.droppedLk,
				r.res.attrs, r.res.dropped, r.res.schemaURL,
				r.scope.name, r.scope.version, r.scope.attrs, r.scope.dropped, r.scope.schemaURL); err != nil {
				return err
			}
		}
		return nil
	})
}

// appendTraceIndex adds one row per trace and day of the batch.
func appendTraceIndex(b driver.Batch, rows []slSpan) error {
	type key struct {
		hi, lo uint64
		day    int64
	}
	ranges := map[key][2]int64{}
	for i := range rows {
		r := &rows[i]
		k := key{r.traceHi, r.traceLo, r.day}
		if mm, ok := ranges[k]; ok {
			ranges[k] = [2]int64{min(mm[0], r.start), max(mm[1], r.start)}
		} else {
			ranges[k] = [2]int64{r.start, r.start}
		}
	}
	keys := make([]key, 0, len(ranges))
	for k := range ranges {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int {
		return cmp.Or(cmp.Compare(a.hi, b.hi), cmp.Compare(a.lo, b.lo), cmp.Compare(a.day, b.day))
	})
	for _, k := range keys {
		mm := ranges[k]
		if err := b.Append(dayDate(k.day), k.hi, k.lo, mm[0], mm[1]); err != nil {
			return err
		}
	}
	return nil
}

func (s *SpanLogStore) spanRows(td ptrace.Traces) []slSpan {
	lo, hi := s.dayWindow()
	rows := make([]slSpan, 0, td.SpanCount())
	var buf []byte
	for _, rs := range td.ResourceSpans().All() {
		res := encodeResource(rs.Resource(), rs.SchemaUrl())
		for _, ss := range rs.ScopeSpans().All() {
			sc := encodeScope(ss.Scope(), ss.SchemaUrl())
			for _, sp := range ss.Spans().All() {
				start := int64(sp.StartTimestamp())
				r := slSpan{
					day:          s.dayOf(start, lo, hi),
					spanID:       attrenc.SpanIDToUint(sp.SpanID()),
					parentID:     attrenc.SpanIDToUint(sp.ParentSpanID()),
					start:        start,
					duration:     int64(sp.EndTimestamp() - sp.StartTimestamp()),
					res:          &res,
					scope:        &sc,
					name:         sp.Name(),
					statusMsg:    sp.Status().Message(),
					state:        sp.TraceState().AsRaw(),
					kind:         attrenc.Enum8(int32(sp.Kind())),
					statusCode:   attrenc.Enum8(int32(sp.Status().Code())),
					flags:        sp.Flags(),
					droppedAttrs: sp.DroppedAttributesCount(),
					droppedEv:    sp.DroppedEventsCount(),
					droppedLk:    sp.DroppedLinksCount(),
				}
				r.traceHi, r.traceLo = attrenc.TraceIDToUints(sp.TraceID())
				buf = attrenc.AppendMap(buf[:0], sp.Attributes(), nil)
				r.attrs = string(buf)
				buf = attrenc.AppendEvents(buf[:0], sp.Events(), sp.StartTimestamp())
				r.events = string(buf)
				buf = attrenc.AppendLinks(buf[:0], sp.Links())
				r.links = string(buf)
				rows = append(rows, r)
			}
		}
	}
	return rows
}

// WriteLogs inserts ld's records as one block.
func (s *SpanLogStore) WriteLogs(ctx context.Context, ld plog.Logs) error {
	if err := s.begin(); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	if ld.LogRecordCount() == 0 {
		return nil
	}
	lo, hi := s.dayWindow()
	return s.insert(ctx, logsTable, func(b driver.Batch) error {
		var buf []byte
		for _, rl := range ld.ResourceLogs().All() {
			res := encodeResource(rl.Resource(), rl.SchemaUrl())
			for _, sl := range rl.ScopeLogs().All() {
				sc := encodeScope(sl.Scope(), sl.SchemaUrl())
				for _, lr := range sl.LogRecords().All() {
					ts, observed := int64(lr.Timestamp()), int64(lr.ObservedTimestamp())
					var unset uint8
					if ts == 0 {
						ts, unset = observed, 1
					}
					th, tl := attrenc.TraceIDToUints(lr.TraceID())
					buf = attrenc.AppendMap(buf[:0], lr.Attributes(), nil)
					if err := b.Append(dayDate(s.dayOf(ts, lo, hi)), ts, rand.Uint64(), unset, observed,
						th, tl, attrenc.SpanIDToUint(lr.SpanID()), uint32(lr.Flags()),
						attrenc.Enum8(int32(lr.SeverityNumber())), lr.SeverityText(), res.service,
						lr.Body().AsString(), string(buf), lr.DroppedAttributesCount(), lr.EventName(),
						res.attrs, res.dropped, res.schemaURL,
						sc.name, sc.version, sc.attrs, sc.dropped, sc.schemaURL); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
}

// insert sends one block to the table. In a cluster the insert goes through
// the Distributed table synchronously, so that an acknowledged block is on
// its shards rather than queued on the node that took it.
func (s *SpanLogStore) insert(ctx context.Context, t slTable, fill func(driver.Batch) error) error {
	if s.c.Cluster != "" {
		ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_distributed_sync": 1}))
	}
	// 18.16 never completes an INSERT with bound parameters; a prepared
	// batch with the columns named works on every server generation.
	b, err := s.c.Conn.PrepareBatch(ctx, "INSERT INTO "+s.c.Table(t.name)+" ("+t.columnList()+")")
	if err != nil {
		return classify(ctx, "insert into "+t.name, err)
	}
	if err := fill(b); err != nil {
		_ = b.Abort()
		// Append fails on values the columns cannot take: a bug, not an
		// outage; retrying would fail the same way.
		return fmt.Errorf("clickhouse: insert into %s: %w", t.name, err)
	}
	if err := b.Send(); err != nil {
		return classify(ctx, "insert into "+t.name, err)
	}
	return nil
}

// dayDate is day number d as the Date column's value.
func dayDate(d int64) time.Time { return time.Unix(d*86400, 0).UTC() }
