package limits

import (
	"context"
	"errors"
	"fmt"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// ErrSeriesLimit refuses a sample that would create a series past the
// configured limit. It is bad data from the caller's point of view: retrying
// cannot help until series age out, so SampleRejection counts and skips it.
var ErrSeriesLimit = errors.New("series limit reached")

// SeriesHead is where the store keeps its series in memory; *tsdb.Head
// satisfies it. Its appenders resolve existing series (storage.GetRef).
type SeriesHead interface {
	NumSeries() uint64
	Appender(context.Context) storage.Appender
}

// LimitSeries returns an AppendableV2 that refuses samples of new series
// once head holds max series or more. Samples of series that already exist
// are always accepted, so a flood of new series cannot starve the ones
// being written already. With max 0 or no head, a is returned unchanged.
//
// Appenders racing past the limit together may overshoot it by the series
// they create between the count and the append: a handful, not a flood.
func LimitSeries(a storage.AppendableV2, head SeriesHead, max uint64) storage.AppendableV2 {
	if max == 0 || head == nil {
		return a
	}
	return seriesLimited{AppendableV2: a, head: head, max: max}
}

type seriesLimited struct {
	storage.AppendableV2
	head SeriesHead
	max  uint64
}

func (s seriesLimited) AppenderV2(ctx context.Context) storage.AppenderV2 {
	return &seriesLimitedAppender{AppenderV2: s.AppendableV2.AppenderV2(ctx), s: s, ctx: ctx}
}

type seriesLimitedAppender struct {
	storage.AppenderV2
	s   seriesLimited
	ctx context.Context
	// lookup is a head appender used only to find existing series, opened
	// the first time the limit is reached and rolled back with the
	// transaction (an open head appender holds back isolation).
	lookup storage.Appender
}

func (a *seriesLimitedAppender) Append(ref storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AOptions) (storage.SeriesRef, error) {
	// A non-zero reference is not trusted at the limit: a cached one may
	// name a series the head has since dropped, for which the head would
	// create the series again from ls.
	if a.s.head.NumSeries() >= a.s.max && !a.exists(ls) {
		return 0, fmt.Errorf("%w: %d series in memory (limits.max_series)", ErrSeriesLimit, a.s.max)
	}
	return a.AppenderV2.Append(ref, ls, st, t, v, h, fh, opts)
}

func (a *seriesLimitedAppender) exists(ls labels.Labels) bool {
	if a.lookup == nil {
		a.lookup = a.s.head.Appender(a.ctx)
	}
	g, ok := a.lookup.(storage.GetRef)
	if !ok {
		// A head that cannot tell: let the sample through rather than
		// refuse series that may exist.
		return true
	}
	ref, _ := g.GetRef(ls, ls.Hash())
	return ref != 0
}

func (a *seriesLimitedAppender) closeLookup() {
	if a.lookup != nil {
		_ = a.lookup.Rollback()
		a.lookup = nil
	}
}

func (a *seriesLimitedAppender) Commit() error {
	a.closeLookup()
	return a.AppenderV2.Commit()
}

func (a *seriesLimitedAppender) Rollback() error {
	a.closeLookup()
	return a.AppenderV2.Rollback()
}
