package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage"
)

// RED computes the figures over every stored span in the range.
func (s *Store) RED(ctx context.Context, q storage.REDQuery) ([]storage.REDRow, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !q.Start.Before(q.End) {
		return nil, fmt.Errorf("%w: RED needs Start before End", storage.ErrInvalidQuery)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, storage.ErrClosed
	}
	type groupKey struct {
		service, op string
		kind        ptrace.SpanKind
		entry       bool
	}
	type obs struct {
		start int64
		dur   int64
		err   bool
	}
	groups := map[groupKey][]obs{}
	for _, entries := range s.traces {
		for _, e := range entries {
			sp := e.span
			start := sp.StartTimestamp().AsTime()
			if start.Before(q.Start) || !start.Before(q.End) {
				continue
			}
			svc := serviceOf(e)
			var k groupKey
			if q.Service != "" {
				if svc != q.Service {
					continue
				}
				k = groupKey{service: svc, op: sp.Name(), kind: sp.Kind()}
			} else {
				k = groupKey{service: svc, entry: sp.Kind() == ptrace.SpanKindServer || sp.Kind() == ptrace.SpanKindConsumer}
			}
			groups[k] = append(groups[k], obs{start.UnixNano(), int64(sp.EndTimestamp()) - int64(sp.StartTimestamp()), sp.Status().Code() == ptrace.StatusCodeError})
		}
	}
	var out []storage.REDRow
	for k, o := range groups {
		if q.Service == "" && !k.entry {
			if _, ok := groups[groupKey{service: k.service, entry: true}]; ok {
				continue // the service has requests; its other spans do not count
			}
		}
		row := storage.REDRow{Service: k.service, Operation: k.op, Kind: k.kind}
		durs := make([]int64, 0, len(o))
		bins := map[int64][]obs{}
		for _, x := range o {
			if row.First.IsZero() || x.start < row.First.UnixNano() {
				row.First = time.Unix(0, x.start)
			}
			row.Calls++
			if x.err {
				row.Errors++
			}
			durs = append(durs, x.dur)
			if q.Step > 0 {
				b := (x.start - q.Start.UnixNano()) / int64(q.Step)
				bins[b] = append(bins[b], x)
			}
		}
		row.P50, row.P95, row.P99 = storage.DurationQuantile(durs, 0.5), storage.DurationQuantile(durs, 0.95), storage.DurationQuantile(durs, 0.99)
		for b, bo := range bins {
			bin := storage.REDBin{Start: q.Start.Add(time.Duration(b) * q.Step)}
			bd := make([]int64, 0, len(bo))
			for _, x := range bo {
				bin.Calls++
				if x.err {
					bin.Errors++
				}
				bd = append(bd, x.dur)
			}
			bin.P99 = storage.DurationQuantile(bd, 0.99)
			row.Bins = append(row.Bins, bin)
		}
		slices.SortFunc(row.Bins, func(a, b storage.REDBin) int { return a.Start.Compare(b.Start) })
		out = append(out, row)
	}
	slices.SortFunc(out, func(a, b storage.REDRow) int {
		return cmp.Or(cmp.Compare(a.Service, b.Service), cmp.Compare(a.Operation, b.Operation), cmp.Compare(a.Kind, b.Kind))
	})
	return out, nil
}

// LogTraceStats counts records per service in the range.
func (s *Store) LogTraceStats(ctx context.Context, start, end time.Time) ([]storage.ServiceLogs, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, storage.ErrClosed
	}
	by := map[string]*storage.ServiceLogs{}
	for _, e := range s.logs {
		if e.at.Before(start) || !e.at.Before(end) {
			continue
		}
		sl := by[e.record.Service]
		if sl == nil {
			sl = &storage.ServiceLogs{Service: e.record.Service}
			by[e.record.Service] = sl
		}
		sl.Total++
		if !e.record.TraceID.IsEmpty() {
			sl.WithTrace++
		}
	}
	out := make([]storage.ServiceLogs, 0, len(by))
	for _, sl := range by {
		out = append(out, *sl)
	}
	slices.SortFunc(out, func(a, b storage.ServiceLogs) int { return cmp.Compare(a.Service, b.Service) })
	return out, nil
}
