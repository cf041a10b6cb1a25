package traceassembly

import (
	"cmp"
	"slices"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage"
)

// SummaryRow is the part of a stored span a trace summary needs.
type SummaryRow struct {
	TraceID          pcommon.TraceID
	SpanID, ParentID uint64
	Start, Duration  int64
	Service, Name    string
	StatusCode       uint8
}

// compareSummary orders two copies of one span as compare does: its
// fields are compare's first, so a summary counts the copy GetTrace
// returns, or one that is equal in every field a summary shows.
func compareSummary(a, b *SummaryRow) int {
	return cmp.Or(
		cmp.Compare(a.Start+a.Duration, b.Start+b.Duration),
		cmp.Compare(a.Start, b.Start),
		cmp.Compare(a.StatusCode, b.StatusCode),
		cmp.Compare(a.Name, b.Name),
		cmp.Compare(a.Service, b.Service),
		cmp.Compare(a.ParentID, b.ParentID),
	)
}

type spanKey struct {
	trace pcommon.TraceID
	span  uint64
}

// Summarizer builds trace summaries from the rows of any number of traces,
// counting each span once however often it was stored. Rows may come in
// any order; it is not safe for concurrent use.
type Summarizer struct {
	spans map[spanKey]SummaryRow
}

// NewSummarizer returns an empty Summarizer.
func NewSummarizer() *Summarizer {
	return &Summarizer{spans: map[spanKey]SummaryRow{}}
}

// Add takes one row; of several copies of a span the winner counts.
func (s *Summarizer) Add(r SummaryRow) {
	k := spanKey{r.TraceID, r.SpanID}
	if old, ok := s.spans[k]; ok && compareSummary(&r, &old) <= 0 {
		return
	}
	s.spans[k] = r
}

// Summaries returns the summaries of ids that have rows, in the order of
// ids. When a trace has several roots, the one that starts first names it.
func (s *Summarizer) Summaries(ids []pcommon.TraceID) []storage.TraceSummary {
	type acc struct {
		sum        storage.TraceSummary
		first, end int64
		root       *SummaryRow
		svcs       map[string]*storage.ServiceSpans
	}
	accs := map[pcommon.TraceID]*acc{}
	for k := range s.spans {
		r := s.spans[k]
		a := accs[r.TraceID]
		if a == nil {
			a = &acc{first: r.Start, end: r.Start + r.Duration, svcs: map[string]*storage.ServiceSpans{}}
			a.sum.TraceID = r.TraceID
			accs[r.TraceID] = a
		}
		a.first, a.end = min(a.first, r.Start), max(a.end, r.Start+r.Duration)
		ss := a.svcs[r.Service]
		if ss == nil {
			ss = &storage.ServiceSpans{Name: r.Service}
			a.svcs[r.Service] = ss
		}
		ss.Spans++
		a.sum.SpanCount++
		if ptrace.StatusCode(r.StatusCode) == ptrace.StatusCodeError {
			ss.Errors++
			a.sum.ErrorCount++
		}
		if r.ParentID == 0 && (a.root == nil || cmp.Or(cmp.Compare(r.Start, a.root.Start), cmp.Compare(r.SpanID, a.root.SpanID)) < 0) {
			a.root = &r
		}
	}
	out := make([]storage.TraceSummary, 0, len(ids))
	for _, id := range ids {
		a := accs[id]
		if a == nil {
			continue
		}
		if a.root != nil {
			a.sum.RootService, a.sum.RootName = a.root.Service, a.root.Name
		}
		a.sum.Start = time.Unix(0, a.first).UTC()
		a.sum.Duration = time.Duration(max(0, a.end-a.first))
		for _, ss := range a.svcs {
			a.sum.Services = append(a.sum.Services, *ss)
		}
		slices.SortFunc(a.sum.Services, func(x, y storage.ServiceSpans) int { return cmp.Compare(x.Name, y.Name) })
		out = append(out, a.sum)
	}
	return out
}
