package memory

import (
	"bytes"
	"cmp"
	"context"
	"slices"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/vigil-observability/vigil/internal/storage"
)

var _ storage.DiagnosisReader = (*Store)(nil)

// maxMissingSamples is how many missing trace ids ServiceLogTraces carries.
const maxMissingSamples = 5

// SpanShapes scans every stored span.
func (s *Store) SpanShapes(ctx context.Context, q storage.SpanShapeQuery) ([]storage.SpanShape, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, storage.ErrClosed
	}
	lo, hi := q.Start.UnixNano(), q.End.UnixNano()
	var out []storage.SpanShape
	for _, entries := range s.traces {
		for _, e := range entries {
			sp := e.span
			start := int64(sp.StartTimestamp())
			if start < lo || start >= hi {
				continue
			}
			out = append(out, storage.SpanShape{
				TraceID:      sp.TraceID(),
				SpanID:       sp.SpanID(),
				ParentSpanID: sp.ParentSpanID(),
				Service:      serviceOf(e),
				Name:         sp.Name(),
				Kind:         sp.Kind(),
				Start:        start,
				End:          int64(sp.EndTimestamp()),
				Peer:         storage.SpanPeer(sp.Kind(), sp.Attributes()),
			})
		}
	}
	// Ties broken by ids so that results (and Limit) are deterministic.
	slices.SortFunc(out, func(a, b storage.SpanShape) int {
		return cmp.Or(cmp.Compare(a.Start, b.Start), bytes.Compare(a.TraceID[:], b.TraceID[:]), bytes.Compare(a.SpanID[:], b.SpanID[:]))
	})
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit:q.Limit]
	}
	return out, nil
}

// LogTraceCoverage scans every stored log record and span.
func (s *Store) LogTraceCoverage(ctx context.Context, q storage.LogTraceQuery) ([]storage.ServiceLogTraces, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, storage.ErrClosed
	}
	ids := map[string]map[pcommon.TraceID]struct{}{}
	for _, e := range s.logs {
		id := e.record.TraceID
		if id.IsEmpty() || e.at.Before(q.Start) || !e.at.Before(q.End) {
			continue
		}
		m := ids[e.record.Service]
		if m == nil {
			m = map[pcommon.TraceID]struct{}{}
			ids[e.record.Service] = m
		}
		m[id] = struct{}{}
	}
	lo, hi := q.SpanStart.UnixNano(), q.SpanEnd.UnixNano()
	stored := func(id pcommon.TraceID) bool {
		return slices.ContainsFunc(s.traces[id], func(e spanEntry) bool {
			start := int64(e.span.StartTimestamp())
			return start >= lo && start < hi
		})
	}
	out := make([]storage.ServiceLogTraces, 0, len(ids))
	for svc, m := range ids {
		st := storage.ServiceLogTraces{Service: svc, TraceIDs: int64(len(m))}
		var missing []pcommon.TraceID
		for id := range m {
			if !stored(id) {
				missing = append(missing, id)
			}
		}
		st.Missing = int64(len(missing))
		slices.SortFunc(missing, func(a, b pcommon.TraceID) int { return bytes.Compare(a[:], b[:]) })
		if len(missing) > 0 {
			st.Samples = missing[:min(len(missing), maxMissingSamples):min(len(missing), maxMissingSamples)]
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b storage.ServiceLogTraces) int { return cmp.Compare(a.Service, b.Service) })
	return out, nil
}
