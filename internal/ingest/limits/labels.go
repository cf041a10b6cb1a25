package limits

import (
	"errors"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// CheckLabels decides whether a metric series may be stored. It returns
// ok=false and a stable reason (ReasonTooManyLabels, ReasonLabelNameTooLong,
// ReasonLabelValueTooLong or ReasonInvalidLabel) for a series that must be
// rejected whole: labels are the series' identity, so unlike span attributes
// they are never truncated or repaired, which would silently merge distinct
// series. ls must be sorted, as labels.Labels built by the Prometheus
// packages always are. Zero fields of l mean the defaults.
//
// A series is invalid when it has no metric name, an empty label name, a
// repeated label name, or a name or value that is not valid UTF-8.
func (l Limits) CheckLabels(ls labels.Labels) (reason string, ok bool) {
	l = l.WithDefaults()
	if ls.Len() > l.MaxLabelsPerSeries {
		return ReasonTooManyLabels, false
	}
	if ls.Get(model.MetricNameLabel) == "" {
		return ReasonInvalidLabel, false
	}
	reason, ok = "", true
	prev := ""
	first := true
	ls.Range(func(lb labels.Label) {
		if !ok {
			return
		}
		switch {
		case lb.Name == "" || (!first && lb.Name == prev):
			reason, ok = ReasonInvalidLabel, false
		case len(lb.Name) > l.MaxLabelNameLength:
			reason, ok = ReasonLabelNameTooLong, false
		case len(lb.Value) > l.MaxLabelValueLength:
			reason, ok = ReasonLabelValueTooLong, false
		case !utf8.ValidString(lb.Name) || !utf8.ValidString(lb.Value):
			reason, ok = ReasonInvalidLabel, false
		}
		prev, first = lb.Name, false
	})
	return reason, ok
}

// MaxSampleFutureSkew caps MaxFutureSkew for metric samples. The TSDB
// accepts in-order samples down to an hour below the newest sample it holds
// (half its two-hour head chunk range), and late ones only within the
// out-of-order window. One sender whose clock runs an hour ahead would
// therefore make every other sender's on-time samples "too old" for an
// hour. Ten minutes, as Prometheus allows for remote_write, keeps a skewed
// clock from hurting anyone but its owner.
const MaxSampleFutureSkew = 10 * time.Minute

// CheckSampleTimestamp decides whether a sample timestamp (milliseconds since
// the epoch) lies within [now-MaxPastAge, now+min(MaxFutureSkew,
// MaxSampleFutureSkew)].
func (l Limits) CheckSampleTimestamp(tMillis int64, now time.Time) (reason string, ok bool) {
	l = l.WithDefaults()
	switch {
	case tMillis < now.Add(-l.MaxPastAge).UnixMilli():
		return ReasonTimestampTooOld, false
	case tMillis > now.Add(min(l.MaxFutureSkew, MaxSampleFutureSkew)).UnixMilli():
		return ReasonTimestampInFuture, false
	}
	return "", true
}

// SampleRejection tells a sample the TSDB refused as bad data (retrying
// cannot help, so it is counted and skipped) from a storage failure (ok is
// false: the caller must not acknowledge the request).
func SampleRejection(err error) (reason string, ok bool) {
	switch {
	case errors.Is(err, storage.ErrOutOfOrderSample),
		errors.Is(err, storage.ErrOutOfBounds),
		errors.Is(err, storage.ErrTooOldSample),
		errors.Is(err, storage.ErrDuplicateSampleForTimestamp):
		return ReasonOutOfOrder, true
	case errors.As(err, new(histogram.Error)):
		return ReasonUndecodable, true
	case errors.Is(err, ErrSeriesLimit):
		return ReasonSeriesLimit, true
	}
	return "", false
}
