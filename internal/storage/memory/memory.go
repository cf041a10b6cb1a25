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
	"fmt"
	"hash/fnv"
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
	"github.com/vigil-observability/vigil/internal/storage/traceassembly"
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
	stream string    // streamKey of the record's resource
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
	// The spans go through the assembler the other backends use, so that
	// copies of a retried write merge here exactly as they do there.
	asm := traceassembly.New(id, traceassembly.Limits{})
	for _, e := range entries {
		asm.Add(traceassembly.Encode(e.res.resource, e.res.schemaURL, e.scope.scope, e.scope.schemaURL, e.span))
	}
	return asm.Traces()
}

// WriteLogs stores a copy of every log record in ld.
func (s *Store) WriteLogs(ctx context.Context, ld plog.Logs) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var batch []logEntry
	for _, rl := range ld.ResourceLogs().All() {
		resAttrs := rl.Resource().Attributes()
		stream := streamKey(resAttrs)
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
				batch = append(batch, logEntry{at: at, stream: stream, record: rec})
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

// FindLogs yields matching records newest first (oldest first with
// q.Forward). Records with equal timestamps come latest-written first
// (earliest-written first with q.Forward).
func (s *Store) FindLogs(ctx context.Context, q storage.LogQuery) iter.Seq2[storage.LogRecord, error] {
	return storage.PageLogs(ctx, q, storage.LogPageSize, s.findLogs)
}

func (s *Store) findLogs(ctx context.Context, q storage.LogQuery) ([]storage.LogRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var after *logEntry
	if q.After != "" {
		c, err := parseCursor(q.After)
		if err != nil {
			return nil, err
		}
		after = &c
	}
	if err := checkStreamKeys(q.Streams); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, storage.ErrClosed
	}
	order := newestFirst
	if q.Forward {
		order = func(a, b logEntry) int { return newestFirst(b, a) }
	}
	hits := s.matchLogs(q)
	slices.SortFunc(hits, order)
	if after != nil {
		i, _ := slices.BinarySearchFunc(hits, *after, order)
		for i < len(hits) && order(hits[i], *after) <= 0 {
			i++
		}
		hits = hits[i:]
	}
	limit := q.Limit
	out := make([]storage.LogRecord, 0, min(limit, len(hits)))
	for _, e := range hits[:min(limit, len(hits))] {
		r := cloneRecord(e.record)
		r.Cursor = strconv.FormatInt(e.at.UnixNano(), 10) + "." + strconv.FormatUint(e.seq, 10)
		out = append(out, r)
	}
	return out, nil
}

// newestFirst orders records by time, latest first, and records with equal
// timestamps latest-written first.
func newestFirst(a, b logEntry) int {
	if c := b.at.Compare(a.at); c != 0 {
		return c
	}
	return cmp.Compare(b.seq, a.seq)
}

func parseCursor(c string) (logEntry, error) {
	ts, seq, ok := strings.Cut(c, ".")
	n, err1 := strconv.ParseInt(ts, 10, 64)
	q, err2 := strconv.ParseUint(seq, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return logEntry{}, fmt.Errorf("%w: malformed cursor %q", storage.ErrInvalidQuery, c)
	}
	return logEntry{at: time.Unix(0, n), seq: q}, nil
}

// matchLogs returns the entries q selects, ignoring Limit and After. The
// caller holds mu.
func (s *Store) matchLogs(q storage.LogQuery) []logEntry {
	terms := make([]string, len(q.Terms))
	for i, t := range q.Terms {
		terms[i] = strings.ToLower(t)
	}
	var streams map[string]bool
	if len(q.Streams) > 0 {
		streams = make(map[string]bool, len(q.Streams))
		for _, k := range q.Streams {
			streams[k] = true
		}
	}
	var hits []logEntry
	for _, e := range s.logs {
		r := &e.record
		switch {
		case streams != nil && !streams[e.stream],
			!q.TraceID.IsEmpty() && r.TraceID != q.TraceID,
			q.Service != "" && r.Service != q.Service,
			!q.Start.IsZero() && e.at.Before(q.Start),
			!q.End.IsZero() && !e.at.Before(q.End),
			len(q.Severities) > 0 && !slices.Contains(q.Severities, storage.SeverityOf(r.SeverityNumber)),
			!containsAll(strings.ToLower(r.Body), terms),
			!containsAll(r.Body, q.Contains),
			!logAttrsMatch(r, q.Attributes):
			continue
		}
		hits = append(hits, e)
	}
	return hits
}

func containsAll(s string, terms []string) bool {
	for _, t := range terms {
		if !strings.Contains(s, t) {
			return false
		}
	}
	return true
}

func logAttrsMatch(r *storage.LogRecord, want map[string]string) bool {
	for k, v := range want {
		if k == "service.name" {
			if r.Service != v {
				return false
			}
			continue
		}
		got, ok := r.Attributes[k]
		if !ok {
			got, ok = r.ResourceAttributes[k]
		}
		if !ok || rawString(got) != v {
			return false
		}
	}
	return true
}

// LogStreams groups the records q matches by resource.
func (s *Store) LogStreams(ctx context.Context, q storage.LogQuery) ([]storage.LogStream, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkStreamKeys(q.Streams); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, storage.ErrClosed
	}
	byKey := map[string]*storage.LogStream{}
	for _, e := range s.matchLogs(q) {
		st := byKey[e.stream]
		if st == nil {
			st = &storage.LogStream{Key: e.stream, Service: e.record.Service, Resource: cloneRaw(e.record.ResourceAttributes)}
			byKey[e.stream] = st
		}
		st.Entries++
		st.Bytes += int64(len(e.record.Body))
	}
	out := make([]storage.LogStream, 0, len(byKey))
	for _, st := range byKey {
		out = append(out, *st)
	}
	slices.SortFunc(out, func(a, b storage.LogStream) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// streamKey identifies a resource's logs: a hash of its attributes in
// typed JSON, which encoding/json writes with sorted keys, so the key does
// not depend on the order the attributes were sent in.
func streamKey(attrs pcommon.Map) string {
	h := fnv.New64a()
	h.Write([]byte(typedKey(attrs)))
	return fmt.Sprintf("%016x", h.Sum64())
}

// checkStreamKeys rejects what streamKey cannot have made, so that a key
// from another backend or a typo fails loudly instead of matching nothing.
func checkStreamKeys(keys []string) error {
	for _, k := range keys {
		if _, err := strconv.ParseUint(k, 16, 64); err != nil || len(k) != 16 {
			return fmt.Errorf("%w: malformed stream key %q", storage.ErrInvalidQuery, k)
		}
	}
	return nil
}

// LogHistogram counts matching records per step-aligned bin and severity band.
func (s *Store) LogHistogram(ctx context.Context, q storage.LogQuery, step time.Duration) ([]storage.LogBucket, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if step <= 0 {
		return nil, fmt.Errorf("%w: histogram step must be positive", storage.ErrInvalidQuery)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, storage.ErrClosed
	}
	type key struct {
		bin int64
		sev storage.Severity
	}
	counts := map[key]int64{}
	for _, e := range s.matchLogs(q) {
		n := e.at.UnixNano()
		bin := n / int64(step)
		if n%int64(step) < 0 {
			bin--
		}
		counts[key{bin, storage.SeverityOf(e.record.SeverityNumber)}]++
	}
	out := make([]storage.LogBucket, 0, len(counts))
	for k, c := range counts {
		out = append(out, storage.LogBucket{Start: time.Unix(0, k.bin*int64(step)).UTC(), Severity: k.sev, Count: c})
	}
	slices.SortFunc(out, func(a, b storage.LogBucket) int {
		return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.Severity, b.Severity))
	})
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
