package rules

import (
	"context"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
)

// v1Appendable lets Prometheus's rules manager, which still speaks the first
// appender interface, write through the AppendableV2 every ingest path of
// vigil uses, so a metric store needs to implement only the second.
type v1Appendable struct{ storage.AppendableV2 }

var _ storage.Appender = (*v1Appender)(nil)

func (a v1Appendable) Appender(ctx context.Context) storage.Appender {
	return &v1Appender{app: a.AppenderV2(ctx)}
}

// v1Appender forwards samples and histograms. Rules write neither
// exemplars, metadata nor start timestamps, so those are accepted and
// dropped.
type v1Appender struct {
	app  storage.AppenderV2
	opts storage.AppendV2Options
}

func (a *v1Appender) Append(ref storage.SeriesRef, l labels.Labels, t int64, v float64) (storage.SeriesRef, error) {
	return a.app.Append(ref, l, 0, t, v, nil, nil, a.opts)
}

func (a *v1Appender) AppendHistogram(ref storage.SeriesRef, l labels.Labels, t int64, h *histogram.Histogram, fh *histogram.FloatHistogram) (storage.SeriesRef, error) {
	return a.app.Append(ref, l, 0, t, 0, h, fh, a.opts)
}

func (a *v1Appender) SetOptions(o *storage.AppendOptions) {
	a.opts.RejectOutOfOrder = o != nil && o.DiscardOutOfOrder
}

func (a *v1Appender) AppendExemplar(ref storage.SeriesRef, _ labels.Labels, _ exemplar.Exemplar) (storage.SeriesRef, error) {
	return ref, nil
}

func (a *v1Appender) UpdateMetadata(ref storage.SeriesRef, _ labels.Labels, _ metadata.Metadata) (storage.SeriesRef, error) {
	return ref, nil
}

func (a *v1Appender) AppendSTZeroSample(ref storage.SeriesRef, _ labels.Labels, _, _ int64) (storage.SeriesRef, error) {
	return ref, nil
}

func (a *v1Appender) AppendHistogramSTZeroSample(ref storage.SeriesRef, _ labels.Labels, _, _ int64, _ *histogram.Histogram, _ *histogram.FloatHistogram) (storage.SeriesRef, error) {
	return ref, nil
}

func (a *v1Appender) Commit() error   { return a.app.Commit() }
func (a *v1Appender) Rollback() error { return a.app.Rollback() }
