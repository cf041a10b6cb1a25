package logql

import (
	"cmp"
	"context"
	"iter"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// memSource is a Source over streams held in memory, for tests only. It
// records the entry queries it was asked, so that tests can check what
// the engine pushes down.
type memSource struct {
	streams []memStream
	asked   []EntryQuery
}

type memStream struct {
	labels  labels.Labels
	entries []memEntry // in time order
}

type memEntry struct {
	ts       int64
	line     string
	metadata labels.Labels
}

var _ Source = (*memSource)(nil)

func (s *memSource) Streams(_ context.Context, matchers []*Matcher, start, end time.Time) ([]Stream, error) {
	var out []Stream
	for i, st := range s.streams {
		ok := true
		for _, m := range matchers {
			ok = ok && m.Matches(st.labels.Get(m.Name))
		}
		if !ok {
			continue
		}
		var n, b int64
		for _, e := range st.entries {
			if e.ts >= start.UnixNano() && e.ts < end.UnixNano() {
				n++
				b += int64(len(e.line))
			}
		}
		if n > 0 {
			out = append(out, Stream{ID: string(rune('a' + i)), Labels: st.labels, Entries: n, Bytes: b})
		}
	}
	return out, nil
}

func (s *memSource) Entries(_ context.Context, q EntryQuery) iter.Seq2[Entry, error] {
	s.asked = append(s.asked, q)
	var all []Entry
	for si, st := range q.Streams {
		for _, ms := range s.streams {
			if ms.labels.String() != st.Labels.String() {
				continue
			}
			for _, e := range ms.entries {
				if e.ts < q.Start.UnixNano() || e.ts >= q.End.UnixNano() || !containsAll(e.line, q.Contains) {
					continue
				}
				all = append(all, Entry{Stream: si, Timestamp: e.ts, Line: e.line, Metadata: e.metadata})
			}
		}
	}
	slices.SortStableFunc(all, func(a, b Entry) int {
		if q.Forward {
			return cmp.Compare(a.Timestamp, b.Timestamp)
		}
		return cmp.Compare(b.Timestamp, a.Timestamp)
	})
	if q.Limit > 0 && len(all) > q.Limit {
		all = all[:q.Limit]
	}
	return func(yield func(Entry, error) bool) {
		for _, e := range all {
			if !yield(e, nil) {
				return
			}
		}
	}
}

func containsAll(line string, subs []string) bool {
	if len(subs) == 0 {
		return true
	}
	l := strings.ToLower(line)
	for _, s := range subs {
		if !strings.Contains(l, strings.ToLower(s)) {
			return false
		}
	}
	return true
}
