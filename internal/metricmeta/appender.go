package metricmeta

import (
	"context"
	"strings"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
)

// Recording returns an AppendableV2 that passes everything to next and
// records in s the metadata that appenders pass with their samples
// (storage.AOptions' MetricFamilyName and Metadata, which the OTLP
// translator sets from each metric's type, unit and description). The
// metadata of a transaction is recorded when it commits.
func Recording(next storage.AppendableV2, s *Store) storage.AppendableV2 {
	return recording{next: next, s: s}
}

type recording struct {
	next storage.AppendableV2
	s    *Store
}

func (r recording) AppenderV2(ctx context.Context) storage.AppenderV2 {
	return &recordingAppender{AppenderV2: r.next.AppenderV2(ctx), s: r.s}
}

type recordingAppender struct {
	storage.AppenderV2
	s *Store
	// last is the latest family recorded: a family's samples come one
	// after another, so most samples cost one comparison.
	last    string
	lastMD  metadata.Metadata
	pending map[string]metadata.Metadata
}

func (a *recordingAppender) Append(ref storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AOptions) (storage.SeriesRef, error) {
	ref, err := a.AppenderV2.Append(ref, ls, st, t, v, h, fh, opts)
	if err != nil || opts.MetricFamilyName == "" || opts.Metadata.IsEmpty() {
		return ref, err
	}
	if opts.MetricFamilyName == a.last && opts.Metadata == a.lastMD {
		return ref, nil
	}
	if a.pending == nil {
		a.pending = map[string]metadata.Metadata{}
	}
	// The option strings live only for this call.
	md := metadata.Metadata{Type: opts.Metadata.Type, Help: strings.Clone(opts.Metadata.Help), Unit: strings.Clone(opts.Metadata.Unit)}
	a.last, a.lastMD = strings.Clone(opts.MetricFamilyName), md
	a.pending[a.last] = md
	return ref, nil
}

func (a *recordingAppender) Commit() error {
	if err := a.AppenderV2.Commit(); err != nil {
		return err
	}
	for name, md := range a.pending {
		a.s.Set(name, md)
	}
	a.pending = nil
	return nil
}

func (a *recordingAppender) Rollback() error {
	a.pending = nil
	return a.AppenderV2.Rollback()
}
