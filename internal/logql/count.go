package logql

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// Counter is a Source that can count entries where they are stored, in
// time bins, without yielding them: a sum of range aggregations over a
// query that needs nothing of its lines but their number and size (the
// log volume Grafana draws beside every query) then costs a grouped count
// in the store instead of reading every line.
type Counter interface {
	// CountEntries returns the non-empty counts q asks for, in any order. It
	// answers an error wrapping ErrCannotCount when it cannot count by
	// one of q.Metadata exactly; the engine then reads the entries.
	CountEntries(ctx context.Context, q CountQuery) ([]EntryCount, error)
}

// ErrCannotCount is a Counter's answer to a count it cannot make.
var ErrCannotCount = errors.New("logql: cannot count in the source")

// CountQuery asks a Counter for counts.
type CountQuery struct {
	Streams []Stream
	// Bin k holds the entries stamped in (Origin + k*Step,
	// Origin + (k+1)*Step]; entries in (Origin, End] are counted.
	Origin time.Time
	Step   time.Duration
	End    time.Time
	// Contains and NotContains are substrings a line must and must not
	// hold, compared exactly.
	Contains, NotContains []string
	// Metadata are structured metadata names to count by.
	Metadata []string
}

// EntryCount is the entries of one stream, bin and set of metadata values.
type EntryCount struct {
	Stream int
	Bin    int64
	// Metadata holds the values of CountQuery.Metadata, in order; "" for
	// an entry without one.
	Metadata       []string
	Entries, Bytes int64
}

// maxCountBins bounds the bins of one count: a step and range whose
// greatest common divisor is tiny would otherwise cut a long range into
// millions of bins.
const maxCountBins = 100_000

// countable reports whether a log query's pipeline keeps or drops a line
// by exact substrings alone, and returns them: only then can a store
// count its lines without the engine seeing them. A bare drop of
// __error__ changes nothing without a parser to set it.
func countable(q *LogQuery) (contains, notContains []string, ok bool) {
	for _, st := range q.Pipeline {
		switch st := st.(type) {
		case *LineFilter:
			switch {
			case st.Value == "" && st.Op == FilterContains:
			case st.Op == FilterContains:
				contains = append(contains, st.Value)
			case st.Op == FilterNotContains && st.Value != "":
				notContains = append(notContains, st.Value)
			default:
				return nil, nil, false
			}
		case *DropKeep:
			if st.Keep || len(st.Labels) != 1 || st.Labels[0].Name != errorLabel || st.Labels[0].Matcher != nil {
				return nil, nil, false
			}
		default:
			return nil, nil, false
		}
	}
	return contains, notContains, true
}

// countRange evaluates sum by (group) (x) with counts from the source,
// when it is a Counter and the query allows it; ok is false when the
// entries must be read instead.
func (ev *evaluator) countRange(x *RangeAggregation, steps []int64, group *Grouping) (v value, ok bool, err error) {
	counter, isCounter := ev.src.(Counter)
	if !isCounter || group == nil || group.Without {
		return value{}, false, nil
	}
	contains, notContains, can := countable(x.Query)
	if !can {
		return value{}, false, nil
	}
	rng, off := x.Range.Nanoseconds(), x.Offset.Nanoseconds()
	step := rng
	if len(steps) > 1 {
		step = (steps[1] - steps[0]) * 1e6
	}
	bin := gcd(step, rng)
	first, last := steps[0]*1e6-off, steps[len(steps)-1]*1e6-off
	origin := first - rng
	nbins := (last - origin) / bin
	if nbins > maxCountBins {
		return value{}, false, nil
	}
	streams, err := ev.src.Streams(ev.ctx, x.Query.Matchers, time.Unix(0, origin+1), time.Unix(0, last+1))
	if err != nil {
		return value{}, true, fmt.Errorf("logql: reading the streams of %s: %w", x.Query.Selector(), err)
	}
	if len(streams) > ev.opts.MaxStreams {
		return value{}, true, fmt.Errorf("%w: %s matches %d streams, more than %d; narrow the selector", ErrTooManyStreams, x.Query.Selector(), len(streams), ev.opts.MaxStreams)
	}
	if len(streams) == 0 {
		return value{}, true, nil
	}
	// A name a stream has as a label is that label for the stream's
	// entries (metadata of the same name is renamed); the others are
	// counted by as metadata.
	var meta []string
	for _, name := range group.Labels {
		for _, s := range streams {
			if !s.Labels.Has(name) {
				meta = append(meta, name)
				break
			}
		}
	}
	counts, err := counter.CountEntries(ev.ctx, CountQuery{
		Streams: streams, Origin: time.Unix(0, origin), Step: time.Duration(bin), End: time.Unix(0, last),
		Contains: contains, NotContains: notContains, Metadata: meta,
	})
	if errors.Is(err, ErrCannotCount) {
		return value{}, false, nil
	}
	if err != nil {
		return value{}, true, fmt.Errorf("logql: counting the entries of %s: %w", x.Query.Selector(), err)
	}

	type acc struct {
		lbls           labels.Labels
		entries, bytes []int64 // per bin, then running sums
	}
	var (
		accs  []*acc
		index = map[string]*acc{}
		b     = labels.NewScratchBuilder(len(group.Labels))
	)
	for _, c := range counts {
		if c.Stream < 0 || c.Stream >= len(streams) || c.Bin < 0 || c.Bin >= nbins || len(c.Metadata) != len(meta) {
			return value{}, true, fmt.Errorf("logql: source counted stream %d bin %d with %d metadata values, out of %d streams, %d bins, %d names", c.Stream, c.Bin, len(c.Metadata), len(streams), nbins, len(meta))
		}
		ev.stats.EntriesScanned += c.Entries
		ev.stats.BytesScanned += c.Bytes
		b.Reset()
		for _, name := range group.Labels {
			val := streams[c.Stream].Labels.Get(name)
			if val == "" {
				if i := slices.Index(meta, name); i >= 0 {
					val = c.Metadata[i]
				}
			}
			if val != "" {
				b.Add(name, val)
			}
		}
		b.Sort()
		lbls := b.Labels()
		key := lbls.String()
		a, ok := index[key]
		if !ok {
			if (len(accs)+1)*len(steps) > ev.opts.MaxSamples {
				return value{}, true, fmt.Errorf("%w: %s has %d series over %d steps, more than %d samples; aggregate with sum by (...), narrow the selector or increase the step", ErrTooManySamples, x, len(accs)+1, len(steps), ev.opts.MaxSamples)
			}
			a = &acc{lbls: lbls, entries: make([]int64, nbins), bytes: make([]int64, nbins)}
			index[key] = a
			accs = append(accs, a)
		}
		a.entries[c.Bin] += c.Entries
		a.bytes[c.Bin] += c.Bytes
	}
	slices.SortFunc(accs, func(a, b *acc) int { return labels.Compare(a.lbls, b.lbls) })

	perWindow := rng / bin
	out := make([]series, 0, len(accs))
	for _, a := range accs {
		for i := int64(1); i < nbins; i++ {
			a.entries[i] += a.entries[i-1]
			a.bytes[i] += a.bytes[i-1]
		}
		sum := func(run []int64, hi int64) int64 {
			// Bins hi-perWindow+1 .. hi make up the window.
			s := run[hi]
			if lo := hi - perWindow; lo >= 0 {
				s -= run[lo]
			}
			return s
		}
		s := newSeries(a.lbls, len(steps))
		has := false
		for i, t := range steps {
			hi := (t*1e6-off-origin)/bin - 1
			count := sum(a.entries, hi)
			if count == 0 {
				continue
			}
			bytes := sum(a.bytes, hi)
			v, err := rangeValue(x, int64(count), bytes)
			if err != nil {
				return value{}, true, err
			}
			s.vals[i] = v
			s.ok[i], has = true, true
		}
		if has {
			out = append(out, s)
		}
	}
	return value{series: out}, true, nil
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return max(a, 1)
}
