// Package otlpmetrics turns OTLP metrics into Prometheus series with
// Prometheus' own OTLP translator, so that names, units, labels, job,
// instance and target_info follow the OpenTelemetry-to-Prometheus
// compatibility rules exactly as a Prometheus server ingesting OTLP would:
//
//   - names and units normalized with suffixes ("http.server.request.duration"
//     in "s" → http_server_request_duration_seconds), _total for monotonic
//     sums, _ratio for unit "1";
//   - explicit-bucket histograms as classic _bucket{le}/_sum/_count series,
//     exponential histograms as native histograms, summaries as quantiles;
//   - service.namespace/service.name → job, service.instance.id → instance,
//     the other resource attributes in target_info;
//   - cumulative temporality only: delta metrics are refused, as Prometheus
//     does by default, because storing deltas as counters would break rate().
package otlpmetrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	otlptranslator "github.com/prometheus/prometheus/storage/remote/otlptranslator/prometheusremotewrite"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/vigil-observability/vigil/internal/ingest"
	"github.com/vigil-observability/vigil/internal/ingest/limits"
	"github.com/vigil-observability/vigil/internal/selfobs"
)

// lookbackDelta must match the PromQL engine's: the translator repeats
// target_info every half lookback so joins against it never see a gap.
const lookbackDelta = 5 * time.Minute

// Options configures a Consumer.
type Options struct {
	// Appendable is where samples go; *tsdb.DB satisfies it. Required.
	Appendable storage.AppendableV2
	// Limits bounds series labels and sample timestamps; zero fields mean defaults.
	Limits limits.Limits
	// Ingest counts received, stored and rejected samples (signal
	// "metrics"); nil counts nothing.
	Ingest *selfobs.IngestMetrics
	// Logger receives warnings about refused data; nil discards them.
	Logger *slog.Logger
	// Registerer receives vigil_otlp_translation_warnings_total{category};
	// nil registers nothing.
	Registerer prometheus.Registerer
}

// Consumer converts OTLP metrics and appends them in one transaction per
// call. It implements ingest.MetricsConsumer and is safe for concurrent use.
type Consumer struct {
	appendable storage.AppendableV2
	limits     limits.Limits
	ingest     *selfobs.IngestMetrics
	logger     *slog.Logger
	warnings   *prometheus.CounterVec
	converters sync.Pool // *otlptranslator.PrometheusConverter
	now        func() time.Time
}

var _ ingest.MetricsConsumer = (*Consumer)(nil)

// NewConsumer returns a Consumer. It panics if opts.Appendable is nil, a
// wiring mistake no request can fix.
func NewConsumer(opts Options) *Consumer {
	if opts.Appendable == nil {
		panic("otlpmetrics: Options.Appendable is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Consumer{
		appendable: opts.Appendable,
		limits:     opts.Limits.WithDefaults(),
		ingest:     opts.Ingest,
		logger:     opts.Logger,
		warnings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_otlp_translation_warnings_total",
			Help: "Warnings while translating OTLP metrics to Prometheus series (data kept), by category.",
		}, []string{"category"}),
		converters: sync.Pool{New: func() any { return otlptranslator.NewPrometheusConverter(nil) }},
		now:        time.Now,
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(c.warnings)
	}
	return c
}

// ConsumeMetrics stores md. It returns nil once every acceptable sample is
// committed (durable in the WAL), even if some were refused: those are
// counted in vigil_rejected_total and logged, and a retry could not store
// them. It returns an error wrapping ingest.ErrUnavailable, with nothing
// stored, when storage fails. It removes out-of-range data points from md.
func (c *Consumer) ConsumeMetrics(ctx context.Context, md pmetric.Metrics) error {
	_, err := c.Consume(ctx, md)
	return err
}

// Consume is ConsumeMetrics that also returns what was refused, for a
// receiver answering with an OTLP partial success. Report counts samples
// (one OTLP histogram data point becomes several), except that data points
// refused for their timestamp before translation count one each.
func (c *Consumer) Consume(ctx context.Context, md pmetric.Metrics) (limits.Report, error) {
	now := c.now()
	report := limits.Report{Item: "samples"}
	// Out-of-range timestamps go before translation: the translator spreads
	// target_info samples over each resource's time range, so one data
	// point at the epoch would make it append millions of them.
	dropOutOfRange(md, c.limits, now, &report)
	received := report.Rejected

	app := &checkingAppender{AppenderV2: c.appendable.AppenderV2(ctx), c: c, now: now, report: &report}
	conv := c.converters.Get().(*otlptranslator.PrometheusConverter)
	conv.Reset(app)
	start := c.now()
	annots, convErr := conv.FromMetrics(ctx, md, otlptranslator.Settings{
		AddMetricSuffixes: true,
		LookbackDelta:     lookbackDelta,
	})
	conv.Reset(nil)
	c.converters.Put(conv)
	received += app.calls

	var err error
	switch {
	case app.storageErr != nil:
		err = fmt.Errorf("%w: appending OTLP metrics: %w", ingest.ErrUnavailable, app.storageErr)
	case ctx.Err() != nil:
		err = fmt.Errorf("otlpmetrics: %w", ctx.Err())
	}
	if err != nil {
		_ = app.Rollback()
		c.ingest.Receive(ingest.SignalMetrics, received)
		return limits.Report{}, err
	}
	if convErr != nil {
		// The translator skips a metric (or resource) it cannot convert,
		// such as a delta sum, and carries on with the rest. Its samples
		// are unknown; each skipped metric counts once.
		n := countJoined(convErr)
		received += n
		report.Reject(limits.ReasonUndecodable, n)
		c.logger.Warn("otlp metrics: metrics not convertible to Prometheus series were dropped", "count", n, "err", convErr)
	}
	if err := app.Commit(); err != nil {
		c.ingest.Receive(ingest.SignalMetrics, received)
		return limits.Report{}, fmt.Errorf("%w: committing OTLP metrics: %w", ingest.ErrUnavailable, err)
	}

	c.ingest.Receive(ingest.SignalMetrics, received)
	if c.ingest != nil {
		c.ingest.WriteDuration.WithLabelValues(ingest.SignalMetrics).Observe(c.now().Sub(start).Seconds())
		c.ingest.Stored.WithLabelValues(ingest.SignalMetrics).Add(float64(app.appended))
	}
	for reason, n := range report.Dropped {
		c.ingest.Reject(ingest.SignalMetrics, reason, n)
	}
	if report.Rejected > 0 {
		c.logger.Warn("otlp metrics: samples refused", "detail", report.Message(), "stored", app.appended)
	}
	for category, n := range otlptranslator.CountWarningsByCategory(annots) {
		c.warnings.WithLabelValues(string(category)).Add(float64(n))
	}
	return report, nil
}

// countJoined counts the errors errors.Join put together.
func countJoined(err error) int {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return len(j.Unwrap())
	}
	return 1
}

// checkingAppender applies the label limits to every series the translator
// produces and tells refused samples (skipped and counted, so one bad
// series does not fail the batch) from storage failures (remembered, so the
// whole batch is rolled back).
type checkingAppender struct {
	storage.AppenderV2
	c          *Consumer
	now        time.Time
	report     *limits.Report
	calls      int
	appended   int
	storageErr error
}

func (a *checkingAppender) Append(ref storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AOptions) (storage.SeriesRef, error) {
	a.calls++
	if a.storageErr != nil {
		// The batch is lost anyway; stop feeding a failing storage.
		return 0, a.storageErr
	}
	if reason, ok := a.c.limits.CheckLabels(ls); !ok {
		a.report.Reject(reason, 1)
		return 0, nil
	}
	// target_info samples are spread over the resource's time range and
	// can fall outside the accepted window even when every data point lies
	// within it.
	if reason, ok := a.c.limits.CheckSampleTimestamp(t, a.now); !ok {
		a.report.Reject(reason, 1)
		return 0, nil
	}
	ref, err := a.AppenderV2.Append(ref, ls, st, t, v, h, fh, opts)
	if err != nil {
		var partial *storage.AppendPartialError
		if errors.As(err, &partial) {
			// Stored; only exemplars were refused.
			a.c.logger.Debug("otlp metrics: exemplars refused", "series", ls.String(), "err", err)
			err = nil
		}
	}
	if err != nil {
		if reason, ok := limits.SampleRejection(err); ok {
			a.report.Reject(reason, 1)
			return 0, nil
		}
		a.storageErr = err
		return 0, err
	}
	a.appended++
	return ref, nil
}

// dropOutOfRange removes data points whose timestamp limits refuse.
func dropOutOfRange(md pmetric.Metrics, l limits.Limits, now time.Time, r *limits.Report) {
	refuse := func(ts pcommon.Timestamp) bool {
		ms := int64(ts / 1_000_000) // pcommon.Timestamp is unsigned: no negative overflow
		if reason, ok := l.CheckSampleTimestamp(ms, now); !ok {
			r.Reject(reason, 1)
			return true
		}
		return false
	}
	rms := md.ResourceMetrics()
	for i := range rms.Len() {
		sms := rms.At(i).ScopeMetrics()
		for j := range sms.Len() {
			ms := sms.At(j).Metrics()
			for k := range ms.Len() {
				m := ms.At(k)
				switch m.Type() {
				case pmetric.MetricTypeGauge:
					dropPoints(m.Gauge().DataPoints(), refuse)
				case pmetric.MetricTypeSum:
					dropPoints(m.Sum().DataPoints(), refuse)
				case pmetric.MetricTypeHistogram:
					dropPoints(m.Histogram().DataPoints(), refuse)
				case pmetric.MetricTypeExponentialHistogram:
					dropPoints(m.ExponentialHistogram().DataPoints(), refuse)
				case pmetric.MetricTypeSummary:
					dropPoints(m.Summary().DataPoints(), refuse)
				}
			}
		}
	}
}

// pointSlice is what the five pmetric data point slices have in common.
type pointSlice[P interface{ Timestamp() pcommon.Timestamp }] interface {
	RemoveIf(func(P) bool)
}

func dropPoints[P interface{ Timestamp() pcommon.Timestamp }, S pointSlice[P]](s S, refuse func(pcommon.Timestamp) bool) {
	s.RemoveIf(func(p P) bool { return refuse(p.Timestamp()) })
}
