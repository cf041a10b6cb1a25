package storagetest

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// AssertTracesEqual fails tb unless got holds exactly the spans of want, each
// under an equal resource and scope, with every field equal. Order of
// resources, scopes, spans and map keys does not matter; everything else,
// including the type of every attribute value, does. It also requires got to
// be regrouped: no two ResourceSpans with equal resources and no two
// ScopeSpans with equal scopes under one resource.
func AssertTracesEqual(tb testing.TB, want, got ptrace.Traces) {
	tb.Helper()
	w, g := flatten(want), flatten(got)
	if slices.Equal(w, g) {
		assertRegrouped(tb, got)
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "traces differ: want %d spans, got %d\n", len(w), len(g))
	for _, s := range w {
		if _, found := slices.BinarySearch(g, s); !found {
			fmt.Fprintf(&b, "missing: %s\n", s)
		}
	}
	for _, s := range g {
		if _, found := slices.BinarySearch(w, s); !found {
			fmt.Fprintf(&b, "unexpected: %s\n", s)
		}
	}
	tb.Error(b.String())
}

// flatten renders each span with its resource and scope as canonical OTLP
// JSON (map keys sorted) and returns the sorted list.
func flatten(td ptrace.Traces) []string {
	var out []string
	m := &ptrace.JSONMarshaler{}
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, s := range ss.Spans().All() {
				one := ptrace.NewTraces()
				ors := one.ResourceSpans().AppendEmpty()
				ors.SetSchemaUrl(rs.SchemaUrl())
				canonicalResource(rs.Resource(), ors.Resource())
				oss := ors.ScopeSpans().AppendEmpty()
				oss.SetSchemaUrl(ss.SchemaUrl())
				ss.Scope().CopyTo(oss.Scope())
				sortMap(ss.Scope().Attributes(), oss.Scope().Attributes())
				os := oss.Spans().AppendEmpty()
				s.CopyTo(os)
				sortMap(s.Attributes(), os.Attributes())
				for i, e := range s.Events().All() {
					sortMap(e.Attributes(), os.Events().At(i).Attributes())
				}
				for i, l := range s.Links().All() {
					sortMap(l.Attributes(), os.Links().At(i).Attributes())
				}
				b, err := m.MarshalTraces(one)
				if err != nil {
					panic(err) // pdata always marshals
				}
				out = append(out, string(b))
			}
		}
	}
	slices.Sort(out)
	return out
}

func canonicalResource(src, dst pcommon.Resource) {
	src.CopyTo(dst)
	sortMap(src.Attributes(), dst.Attributes())
}

// sortMap overwrites dst with src's entries in key order, recursively.
func sortMap(src, dst pcommon.Map) {
	keys := make([]string, 0, src.Len())
	for k := range src.All() {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	tmp := pcommon.NewMap()
	tmp.EnsureCapacity(len(keys))
	for _, k := range keys {
		v, _ := src.Get(k)
		sortValue(v, tmp.PutEmpty(k))
	}
	tmp.MoveTo(dst)
}

func sortValue(src, dst pcommon.Value) {
	switch src.Type() {
	case pcommon.ValueTypeMap:
		sortMap(src.Map(), dst.SetEmptyMap())
	case pcommon.ValueTypeSlice:
		ds := dst.SetEmptySlice()
		for _, e := range src.Slice().All() {
			sortValue(e, ds.AppendEmpty())
		}
	default:
		src.CopyTo(dst)
	}
}

func assertRegrouped(tb testing.TB, td ptrace.Traces) {
	tb.Helper()
	m := &ptrace.JSONMarshaler{}
	key := func(f func(one ptrace.Traces)) string {
		one := ptrace.NewTraces()
		f(one)
		b, _ := m.MarshalTraces(one)
		return string(b)
	}
	seenRes := map[string]bool{}
	for _, rs := range td.ResourceSpans().All() {
		rk := key(func(one ptrace.Traces) {
			ors := one.ResourceSpans().AppendEmpty()
			ors.SetSchemaUrl(rs.SchemaUrl())
			canonicalResource(rs.Resource(), ors.Resource())
		})
		if seenRes[rk] {
			tb.Errorf("resource returned in more than one ResourceSpans: %s", rk)
		}
		seenRes[rk] = true
		seenScope := map[string]bool{}
		for _, ss := range rs.ScopeSpans().All() {
			sk := key(func(one ptrace.Traces) {
				oss := one.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty()
				oss.SetSchemaUrl(ss.SchemaUrl())
				ss.Scope().CopyTo(oss.Scope())
				sortMap(ss.Scope().Attributes(), oss.Scope().Attributes())
			})
			if seenScope[sk] {
				tb.Errorf("scope returned in more than one ScopeSpans of a resource: %s", sk)
			}
			seenScope[sk] = true
			if ss.Spans().Len() == 0 {
				tb.Errorf("empty ScopeSpans returned: %s", sk)
			}
		}
	}
}

// selectTrace returns the spans of td that belong to id, keeping their
// resources and scopes; it is the expected answer of GetTrace.
func selectTrace(td ptrace.Traces, id pcommon.TraceID) ptrace.Traces {
	out := ptrace.NewTraces()
	td.CopyTo(out)
	out.ResourceSpans().RemoveIf(func(rs ptrace.ResourceSpans) bool {
		rs.ScopeSpans().RemoveIf(func(ss ptrace.ScopeSpans) bool {
			ss.Spans().RemoveIf(func(s ptrace.Span) bool { return s.TraceID() != id })
			return ss.Spans().Len() == 0
		})
		return rs.ScopeSpans().Len() == 0
	})
	return out
}

// mergeTraces appends every ResourceSpans of the tds into one Traces.
func mergeTraces(tds ...ptrace.Traces) ptrace.Traces {
	out := ptrace.NewTraces()
	for _, td := range tds {
		for _, rs := range td.ResourceSpans().All() {
			rs.CopyTo(out.ResourceSpans().AppendEmpty())
		}
	}
	return out
}
