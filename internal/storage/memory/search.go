package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/attrenc"
	"github.com/vigil-observability/vigil/internal/storage/traceassembly"
)

// FindTraces scans every stored span.
func (s *Store) FindTraces(ctx context.Context, q storage.TraceQuery) ([]storage.TraceSummary, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	limit := q.Limit
	if limit <= 0 {
		limit = storage.DefaultTraceLimit
	}
	if err := validateTags(q.Tags); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, storage.ErrClosed
	}
	type hit struct {
		id   pcommon.TraceID
		last pcommon.Timestamp
	}
	var hits []hit
	for id, entries := range s.traces {
		var last pcommon.Timestamp
		found := false
		for _, e := range entries {
			if spanMatches(e, q) {
				found = true
				last = max(last, e.span.StartTimestamp())
			}
		}
		if found {
			hits = append(hits, hit{id, last})
		}
	}
	slices.SortFunc(hits, func(a, b hit) int {
		return cmp.Or(cmp.Compare(b.last, a.last), slices.Compare(a.id[:], b.id[:]))
	})
	out := make([]storage.TraceSummary, 0, min(limit, len(hits)))
	for _, h := range hits[:min(limit, len(hits))] {
		out = append(out, summarize(h.id, s.traces[h.id]))
	}
	return out, nil
}

func summarize(id pcommon.TraceID, entries []spanEntry) storage.TraceSummary {
	sums := traceassembly.NewSummarizer()
	for _, e := range entries {
		sp := e.span
		sums.Add(traceassembly.SummaryRow{
			TraceID:    id,
			SpanID:     attrenc.SpanIDToUint(sp.SpanID()),
			ParentID:   attrenc.SpanIDToUint(sp.ParentSpanID()),
			Start:      int64(sp.StartTimestamp()),
			Duration:   int64(sp.EndTimestamp()) - int64(sp.StartTimestamp()),
			Service:    serviceOf(e),
			Name:       sp.Name(),
			StatusCode: uint8(sp.Status().Code()),
		})
	}
	return sums.Summaries([]pcommon.TraceID{id})[0]
}

func serviceOf(e spanEntry) string {
	if v, ok := e.res.resource.Attributes().Get("service.name"); ok {
		return v.AsString()
	}
	return ""
}

func spanMatches(e spanEntry, q storage.TraceQuery) bool {
	sp := e.span
	start := sp.StartTimestamp().AsTime()
	dur := sp.EndTimestamp().AsTime().Sub(start)
	if sp.EndTimestamp() < sp.StartTimestamp() {
		dur = -sp.StartTimestamp().AsTime().Sub(sp.EndTimestamp().AsTime())
	}
	switch {
	case q.Service != "" && serviceOf(e) != q.Service,
		q.Operation != "" && sp.Name() != q.Operation,
		!q.Start.IsZero() && start.Before(q.Start),
		!q.End.IsZero() && !start.Before(q.End),
		q.MinDuration > 0 && dur < q.MinDuration,
		q.MaxDuration > 0 && dur > q.MaxDuration:
		return false
	}
	for k, v := range q.Tags {
		if !tagMatches(e, k, v) {
			return false
		}
	}
	return true
}

// validateTags rejects values the special tags cannot take.
func validateTags(tags map[string]string) error {
	if len(tags) > storage.MaxTraceTags {
		return fmt.Errorf("%w: %d tags, at most %d can be searched at once", storage.ErrInvalidQuery, len(tags), storage.MaxTraceTags)
	}
	if v, ok := tags["error"]; ok {
		if _, err := strconv.ParseBool(v); err != nil {
			return fmt.Errorf("%w: tag error=%q: want true or false", storage.ErrInvalidQuery, v)
		}
	}
	if v, ok := tags["span.kind"]; ok && (v == "" || !slices.ContainsFunc(kindNames, func(n string) bool { return strings.EqualFold(n, v) })) {
		return fmt.Errorf("%w: tag span.kind=%q: want server, client, producer, consumer or internal", storage.ErrInvalidQuery, v)
	}
	if v, ok := tags["otel.status_code"]; ok && !slices.ContainsFunc([]string{"OK", "ERROR", "UNSET"}, func(n string) bool { return strings.EqualFold(n, v) }) {
		return fmt.Errorf("%w: tag otel.status_code=%q: want OK, ERROR or UNSET", storage.ErrInvalidQuery, v)
	}
	return nil
}

var kindNames = []string{"server", "client", "producer", "consumer", "internal"}

func tagMatches(e spanEntry, k, v string) bool {
	sp := e.span
	switch k {
	case "error":
		want, _ := strconv.ParseBool(v)
		return (sp.Status().Code() == ptrace.StatusCodeError) == want
	case "span.kind":
		return strings.EqualFold(spanKindName(sp.Kind()), v)
	case "otel.status_code":
		return strings.EqualFold(statusName(sp.Status().Code()), v)
	}
	if a, ok := sp.Attributes().Get(k); ok {
		return a.AsString() == v
	}
	if a, ok := e.res.resource.Attributes().Get(k); ok {
		return a.AsString() == v
	}
	return false
}

// spanKindName is the kind as Jaeger's span.kind tag spells it.
func spanKindName(k ptrace.SpanKind) string {
	switch k {
	case ptrace.SpanKindServer:
		return "server"
	case ptrace.SpanKindClient:
		return "client"
	case ptrace.SpanKindProducer:
		return "producer"
	case ptrace.SpanKindConsumer:
		return "consumer"
	case ptrace.SpanKindInternal:
		return "internal"
	}
	return ""
}

func statusName(c ptrace.StatusCode) string {
	switch c {
	case ptrace.StatusCodeOk:
		return "OK"
	case ptrace.StatusCodeError:
		return "ERROR"
	}
	return "UNSET"
}

// rawString renders an AsRaw value as pcommon's AsString would.
func rawString(v any) string {
	pv := pcommon.NewValueEmpty()
	_ = pv.FromRaw(v)
	return pv.AsString()
}

// Services lists the services of every stored span.
func (s *Store) Services(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, storage.ErrClosed
	}
	seen := map[string]bool{}
	for _, entries := range s.traces {
		for _, e := range entries {
			seen[serviceOf(e)] = true
		}
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	slices.Sort(out)
	return out, nil
}

// Operations lists the service's span names and kinds.
func (s *Store) Operations(ctx context.Context, service string) ([]storage.Operation, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, storage.ErrClosed
	}
	seen := map[storage.Operation]bool{}
	for _, entries := range s.traces {
		for _, e := range entries {
			if serviceOf(e) == service {
				seen[storage.Operation{Name: e.span.Name(), Kind: e.span.Kind()}] = true
			}
		}
	}
	out := make([]storage.Operation, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	slices.SortFunc(out, compareOperations)
	return out, nil
}

func compareOperations(a, b storage.Operation) int {
	return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Kind, b.Kind))
}

var _ storage.TraceIDFinder = (*Store)(nil)

// FindTraceIDs returns the ids of the traces FindTraces finds; summaries
// cost this store nothing it would save.
func (s *Store) FindTraceIDs(ctx context.Context, q storage.TraceQuery) ([]pcommon.TraceID, error) {
	sums, err := s.FindTraces(ctx, q)
	if err != nil {
		return nil, err
	}
	ids := make([]pcommon.TraceID, len(sums))
	for i, sum := range sums {
		ids[i] = sum.TraceID
	}
	return ids, nil
}
