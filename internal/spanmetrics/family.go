package spanmetrics

import (
	"strings"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// Overflow is the label value standing for label sets beyond
// Options.MaxSeries.
const Overflow = "__overflow__"

// series is one label set of a family: its cumulative values and what the
// flush needs to append them.
type series[K comparable, V any] struct {
	key K     // valid UTF-8, strings owned by the Recorder
	st  int64 // milliseconds; every value was zero then
	v   V     // guarded by the family's mutex
	out flushState
}

// flushState is only touched by flushes (under Recorder.flushMu).
type flushState struct {
	lbls    []labels.Labels // one per sample series; built on the first flush
	refs    []storage.SeriesRef
	flushed bool // a commit included it: no zero sample needed any more
}

// family is a set of label sets capped at a maximum count.
type family[K comparable, V any] struct {
	index      map[K]*series[K, V]
	list       []*series[K, V] // append-only, in creation order
	regular    int
	overflows  int
	overflowed prometheus.Counter
	// valid returns k with its strings made valid UTF-8; it only
	// allocates for invalid ones.
	valid func(K) K
	// own returns k with copies of its strings, so that a label set never
	// pins a request's memory.
	own func(K) K
	// overflowKeys returns the label set k counts under once the family is
	// full, and the one once overflow label sets are full too.
	overflowKeys func(K) (K, K)
}

func (f *family[K, V]) init(overflowed prometheus.Counter, valid, own func(K) K, overflowKeys func(K) (K, K)) {
	f.index = map[K]*series[K, V]{}
	f.overflowed = overflowed
	f.valid = valid
	f.own = own
	f.overflowKeys = overflowKeys
}

// get returns k's series, creating it with start time st if needed.
func (f *family[K, V]) get(k K, max int, st int64) *series[K, V] {
	if s := f.index[k]; s != nil {
		return s
	}
	return f.create(k, max, st)
}

func (f *family[K, V]) create(k K, max int, st int64) *series[K, V] {
	if vk := f.valid(k); vk != k {
		if s := f.index[vk]; s != nil {
			return s
		}
		k = vk
	}
	if f.regular < max {
		f.regular++
		return f.add(k, st)
	}
	// Overflowing label sets are not remembered: the index would grow
	// without bound. They pay a second lookup each time instead.
	f.overflowed.Inc()
	o1, o2 := f.overflowKeys(k)
	if s := f.index[o1]; s != nil {
		return s
	}
	if f.overflows < max {
		f.overflows++
		return f.add(o1, st)
	}
	if s := f.index[o2]; s != nil {
		return s
	}
	return f.add(o2, st)
}

func (f *family[K, V]) add(k K, st int64) *series[K, V] {
	k = f.own(k)
	s := &series[K, V]{key: k, st: st}
	f.index[k] = s
	f.list = append(f.list, s)
	return s
}

// snapshot copies the values of every series into buf, under the family's
// mutex. The returned list may be read without it: its elements are never
// changed and their keys are immutable.
func (f *family[K, V]) snapshot(buf []V) ([]*series[K, V], []V) {
	buf = buf[:0]
	for _, s := range f.list {
		buf = append(buf, s.v)
	}
	return f.list, buf
}

// validString returns s with invalid UTF-8 replaced, as Prometheus label
// values must be valid.
func validString(s string) string {
	if !utf8.ValidString(s) {
		return strings.ToValidUTF8(s, "\uFFFD")
	}
	return s
}
