// Package memory is an in-process storage.SpanLogStore for tests only.
//
// It keeps deep copies of everything written in maps guarded by a mutex, so
// it is neither durable nor bounded: never use it in the server. It exists so
// that packages above storage (receivers, query APIs) can be unit-tested
// without linking DuckDB, and it passes the same storagetest conformance
// suite as the real backends so that its behaviour can be trusted.
package memory

import (
	"cmp"
	"context"
	"encoding/json"
	"iter"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage"
)

// Store is a memory-only span and log store. The zero value is not usable;
// call New.
type Store struct {
	mu     sync.RWMutex
	closed bool
	traces map[pcommon.TraceID][]spanEntry
	logs   []logEntry
	seq    uint64
}

// spanEntry is one stored span with the resource and scope it was written
// under. Entries from one ResourceSpans share the same copied resource.
type spanEntry struct {
	res   *resourceCopy
	scope *scopeCopy
	span  ptrace.Span
}

type resourceCopy struct {
	key       string
	resource  pcommon.Resource
	schemaURL string
}

type scopeCopy struct {
	key       string
	scope     pcommon.InstrumentationScope
	schemaURL string
}

type logEntry struct {
	seq    uint64
	at     time.Time // Timestamp, or ObservedTimestamp when Timestamp is unset
	record storage.LogRecord
}

var _ storage.SpanLogStore = (*Store)(nil)
var _ storage.Retainer = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	return &Store{traces: make(map[pcommon.TraceID][]spanEntry)}
}

// WriteTraces stores a copy of every span in td.
func (s *Store) WriteTraces(ctx context.Context, td ptrace.Traces) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// Copy outside the lock; pdata copies are the expensive part.
	type pending struct {
		id pcommon.TraceID
		e  spanEntry
	}
	var batch []pending
	for _, rs := range td.ResourceSpans().All() {
		rc := &resourceCopy{resource: pcommon.NewResource(), schemaURL: rs.SchemaUrl()}
		rs.Resource().CopyTo(rc.resource)
		rc.key = resourceKey(rc.resource, rc.schemaURL)
		for _, ss := range rs.ScopeSpans().All() {
			sc := &scopeCopy{scope: pcommon.NewInstrumentationScope(), schemaURL: ss.SchemaUrl()}
			ss.Scope().CopyTo(sc.scope)
			sc.key = scopeKey(sc.scope, sc.schemaURL)
			for _, span := range ss.Spans().All() {
				cp := ptrace.NewSpan()
				span.CopyTo(cp)
				batch = append(batch, pending{id: span.TraceID(), e: spanEntry{res: rc, scope: sc, span: cp}})
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return storage.ErrClosed
	}
	for _, p := range batch {
		s.traces[p.id] = append(s.traces[p.id], p.e)
	}
	return nil
}

// GetTrace returns the spans of the trace regrouped by resource and scope.
func (s *Store) GetTrace(ctx context.Context, id pcommon.TraceID) (ptrace.Traces, error) {
	if err := ctx.Err(); err != nil {
		return ptrace.Traces{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ptrace.Traces{}, storage.ErrClosed
	}
	entries := s.traces[id]
	if len(entries) == 0 {
		return ptrace.Traces{}, storage.ErrTraceNotFound
	}
	td := ptrace.NewTraces()
	resIdx := map[string]ptrace.ResourceSpans{}
	scopeIdx := map[[2]string]ptrace.ScopeSpans{}
	for _, e := range entries {
		rs, ok := resIdx[e.res.key]
		if !ok {
			rs = td.ResourceSpans().AppendEmpty()
			e.res.resource.CopyTo(rs.Resource())
			rs.SetSchemaUrl(e.res.schemaURL)
			resIdx[e.res.key] = rs
		}
		sk := [2]string{e.res.key, e.scope.key}
		ss, ok := scopeIdx[sk]
		if !ok {
			ss = rs.ScopeSpans().AppendEmpty()
			e.scope.scope.CopyTo(ss.Scope())
			ss.SetSchemaUrl(e.scope.schemaURL)
			scopeIdx[sk] = ss
		}
		e.span.CopyTo(ss.Spans().AppendEmpty())
	}
	return td, nil
}

// WriteLogs stores a copy of every log record in ld.
func (s *Store) WriteLogs(ctx context.Context, ld plog.Logs) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var batch []logEntry
	for _, rl := range ld.ResourceLogs().All() {
		resAttrs := rl.Resource().Attributes()
		service := ""
		if v, ok := resAttrs.Get("service.name"); ok {
			service = v.AsString()
		}
		for _, sl := range rl.ScopeLogs().All() {
			for _, lr := range sl.LogRecords().All() {
				rec := storage.LogRecord{
					Timestamp:          asTime(lr.Timestamp()),
					ObservedTimestamp:  asTime(lr.ObservedTimestamp()),
					SeverityNumber:     lr.SeverityNumber(),
					SeverityText:       lr.SeverityText(),
					Body:               lr.Body().AsString(),
					Service:            service,
					TraceID:            lr.TraceID(),
					SpanID:             lr.SpanID(),
					Attributes:         lr.Attributes().AsRaw(),
					ResourceAttributes: resAttrs.AsRaw(),
					ScopeName:          sl.Scope().Name(),
				}
				at := rec.Timestamp
				if at.IsZero() {
					at = rec.ObservedTimestamp
				}
				batch = append(batch, logEntry{at: at, record: rec})
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return storage.ErrClosed
	}
	for _, e := range batch {
		s.seq++
		e.seq = s.seq
		s.logs = append(s.logs, e)
	}
	return nil
}

// FindLogs yields matching records newest first. Records with equal
// timestamps come latest-written first.
func (s *Store) FindLogs(ctx context.Context, q storage.LogQuery) iter.Seq2[storage.LogRecord, error] {
	return func(yield func(storage.LogRecord, error) bool) {
		if err := ctx.Err(); err != nil {
			yield(storage.LogRecord{}, err)
			return
		}
		matches, err := s.findLogs(q)
		if err != nil {
			yield(storage.LogRecord{}, err)
			return
		}
		for _, r := range matches {
			if !yield(r, nil) {
				return
			}
		}
	}
}

func (s *Store) findLogs(q storage.LogQuery) ([]storage.LogRecord, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = storage.DefaultLogLimit
	}
	text := strings.ToLower(q.Text)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, storage.ErrClosed
	}
	var hits []logEntry
	for _, e := range s.logs {
		switch {
		case !q.TraceID.IsEmpty() && e.record.TraceID != q.TraceID,
			q.Service != "" && e.record.Service != q.Service,
			text != "" && !strings.Contains(strings.ToLower(e.record.Body), text),
			!q.Start.IsZero() && e.at.Before(q.Start),
			!q.End.IsZero() && !e.at.Before(q.End):
			continue
		}
		hits = append(hits, e)
	}
	slices.SortFunc(hits, func(a, b logEntry) int {
		if c := b.at.Compare(a.at); c != 0 {
			return c
		}
		return cmp.Compare(b.seq, a.seq)
	})
	out := make([]storage.LogRecord, 0, min(limit, len(hits)))
	for _, e := range hits[:min(limit, len(hits))] {
		out = append(out, cloneRecord(e.record))
	}
	return out, nil
}

// DropBefore removes spans that start and logs that are stamped before t.
// The memory store has no partitions, so it reports one "partition" per
// trace or record removed.
func (s *Store) DropBefore(ctx context.Context, t time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, storage.ErrClosed
	}
	n := 0
	cut := pcommon.NewTimestampFromTime(t)
	for id, entries := range s.traces {
		kept := slices.DeleteFunc(entries, func(e spanEntry) bool { return e.span.StartTimestamp() < cut })
		if len(kept) == 0 {
			delete(s.traces, id)
			n++
			continue
		}
		s.traces[id] = kept
	}
	before := len(s.logs)
	s.logs = slices.DeleteFunc(s.logs, func(e logEntry) bool { return e.at.Before(t) })
	return n + before - len(s.logs), nil
}

// Close releases the stored data; later calls return storage.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.traces = nil
	s.logs = nil
	return nil
}

func asTime(ts pcommon.Timestamp) time.Time {
	if ts == 0 {
		return time.Time{}
	}
	return ts.AsTime()
}

// cloneRecord gives the caller maps it may modify without touching the store.
func cloneRecord(r storage.LogRecord) storage.LogRecord {
	r.Attributes = cloneRaw(r.Attributes)
	r.ResourceAttributes = cloneRaw(r.ResourceAttributes)
	return r
}

func cloneRaw(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	pm := pcommon.NewMap()
	// FromRaw only fails on types AsRaw never produces.
	_ = pm.FromRaw(m)
	return pm.AsRaw()
}

// resourceKey identifies equal resources so GetTrace can regroup spans
// written in separate calls. JSON of the typed pdata keeps int and double
// apart, unlike JSON of AsRaw.
func resourceKey(r pcommon.Resource, schemaURL string) string {
	return schemaURL + "\x00" + typedKey(r.Attributes()) + "\x00" + itoa(r.DroppedAttributesCount())
}

func scopeKey(sc pcommon.InstrumentationScope, schemaURL string) string {
	return schemaURL + "\x00" + sc.Name() + "\x00" + sc.Version() + "\x00" + typedKey(sc.Attributes()) + "\x00" + itoa(sc.DroppedAttributesCount())
}

func typedKey(m pcommon.Map) string {
	b, _ := json.Marshal(typed(m.AsRaw()))
	return string(b)
}

// typed tags every scalar with its Go type so that 1 and 1.0 differ.
func typed(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = typed(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = typed(e)
		}
		return out
	case int64:
		return map[string]any{"i": x}
	case float64:
		return map[string]any{"d": x}
	case []byte:
		return map[string]any{"b": x}
	default:
		return x
	}
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }
