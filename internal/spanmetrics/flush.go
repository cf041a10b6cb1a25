package spanmetrics

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
)

// Metric family names the Recorder writes.
const (
	MetricSpanCalls          = "traces_span_metrics_calls_total"
	MetricSpanDuration       = "traces_span_metrics_duration_seconds"
	MetricGraphRequests      = "traces_service_graph_request_total"
	MetricGraphFailed        = "traces_service_graph_request_failed_total"
	MetricGraphServerSeconds = "traces_service_graph_request_server_seconds"
	MetricGraphClientSeconds = "traces_service_graph_request_client_seconds"
	MetricLogRecords         = "vigil_log_records_total"
	// MetricServiceBuildInfo is 1 for each service, instance
	// (service.instance.id) and version (service.version) whose spans
	// arrived since the last flush: the spans' own build_info, from which
	// deploys are derived as from any other *_build_info series.
	MetricServiceBuildInfo = "traces_service_build_info"
)

var families = map[string]metadata.Metadata{
	MetricSpanCalls: {Type: model.MetricTypeCounter,
		Help: "Spans stored by vigil, by service, span name, kind and status."},
	MetricSpanDuration: {Type: model.MetricTypeHistogram, Unit: "seconds",
		Help: "Durations of the spans stored by vigil, by service, span name, kind and status."},
	MetricGraphRequests: {Type: model.MetricTypeCounter,
		Help: "Requests between two services, seen as a client (or producer) span and its server (or consumer) child span."},
	MetricGraphFailed: {Type: model.MetricTypeCounter,
		Help: "Requests between two services where the client or the server span has status ERROR."},
	MetricGraphServerSeconds: {Type: model.MetricTypeHistogram, Unit: "seconds",
		Help: "Durations of requests between two services, as seen by the server span."},
	MetricGraphClientSeconds: {Type: model.MetricTypeHistogram, Unit: "seconds",
		Help: "Durations of requests between two services, as seen by the client span."},
	MetricServiceBuildInfo: {Type: model.MetricTypeGauge,
		Help: "1 for each service, instance (service.instance.id) and version (service.version) whose spans vigil stored since the last flush."},
	MetricLogRecords: {Type: model.MetricTypeCounter,
		Help: "Log records stored by vigil, by service and severity (UNSET when the record has no severity number)."},
}

// Metadata returns the type, unit and help of each metric family the
// Recorder writes, keyed by family name. The Recorder also passes them with
// every sample; this is for APIs that list metadata without reading the
// metrics store.
func Metadata() map[string]metadata.Metadata { return maps.Clone(families) }

// appendOptions are passed with every sample of a family.
var appendOptions = func() map[string]*storage.AOptions {
	m := map[string]*storage.AOptions{}
	for name, md := range families {
		m[name] = &storage.AOptions{MetricFamilyName: name, Metadata: md}
	}
	return m
}()

var (
	spanCallsOpts    = appendOptions[MetricSpanCalls]
	spanDurationOpts = appendOptions[MetricSpanDuration]
	graphTotalOpts   = appendOptions[MetricGraphRequests]
	graphFailedOpts  = appendOptions[MetricGraphFailed]
	graphServerOpts  = appendOptions[MetricGraphServerSeconds]
	graphClientOpts  = appendOptions[MetricGraphClientSeconds]
	logRecordsOpts   = appendOptions[MetricLogRecords]
	buildInfoOpts    = appendOptions[MetricServiceBuildInfo]
)

// Flush appends the current value of every series, timestamped now, in one
// transaction. Samples the store refuses (out of order, say) are skipped
// and reported in the error once the rest is committed; a storage failure
// rolls everything back, and the next flush appends the then-current
// values.
func (r *Recorder) Flush(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("spanmetrics: flush: %w", err)
	}
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	now := r.now()
	t := now.UnixMilli()
	if t <= r.lastFlushMs {
		t = r.lastFlushMs + 1 // each flush must add a sample, not overwrite one
	}
	r.lastFlushMs = t

	r.mu.Lock()
	r.expirePending(now.UnixNano())
	r.pending.releaseIfEmpty()
	versions := r.takeVersions()
	spans, spanVals := r.spans.snapshot(r.spanVals)
	edges, edgeVals := r.edges.snapshot(r.edgeVals)
	r.logMu.Lock()
	logs, logVals := r.logs.snapshot(r.logVals)
	r.startMs = t
	r.logMu.Unlock()
	r.mu.Unlock()
	r.spanVals, r.edgeVals, r.logVals = spanVals, edgeVals, logVals

	b := batch{app: r.app.AppenderV2(ctx), t: t}
	for i, s := range spans {
		if s.out.lbls == nil {
			s.out.init(r.external(spanLabels(s.key)))
		}
		h := &spanVals[i]
		b.add(&s.out, 0, s.st, float64(h.count), spanCallsOpts)
		b.hist(&s.out, 1, s.st, h, spanDurationOpts)
	}
	for _, v := range versions {
		if v.out.lbls == nil {
			lb := labels.NewBuilder(labels.FromStrings(model.MetricNameLabel, MetricServiceBuildInfo,
				"service_name", v.key.service, "version", v.key.version))
			lb.Set("instance", v.key.instance) // none without service.instance.id
			v.out.init(r.external([]labels.Labels{lb.Labels()}))
		}
		// A gauge: no zero before its first sample.
		b.add(&v.out, 0, t, 1, buildInfoOpts)
	}
	for i, s := range edges {
		if s.out.lbls == nil {
			s.out.init(r.external(edgeLabels(s.key)))
		}
		v := &edgeVals[i]
		b.add(&s.out, 0, s.st, float64(v.client.count), graphTotalOpts)
		b.add(&s.out, 1, s.st, float64(v.failed), graphFailedOpts)
		b.hist(&s.out, 2, s.st, &v.server, graphServerOpts)
		b.hist(&s.out, 2+histSeries, s.st, &v.client, graphClientOpts)
	}
	for i, s := range logs {
		if s.out.lbls == nil {
			s.out.init(r.external(logLabels(s.key)))
		}
		b.add(&s.out, 0, s.st, float64(logVals[i]), logRecordsOpts)
	}

	if b.err != nil {
		r.flushFailures.Inc()
		return errors.Join(fmt.Errorf("spanmetrics: appending: %w", b.err), b.app.Rollback())
	}
	if err := b.app.Commit(); err != nil {
		r.flushFailures.Inc()
		return fmt.Errorf("spanmetrics: committing: %w", err)
	}
	for _, s := range spans {
		s.out.flushed = true
	}
	for _, s := range edges {
		s.out.flushed = true
	}
	for _, s := range logs {
		s.out.flushed = true
	}
	if b.refused > 0 {
		r.flushFailures.Inc()
		return fmt.Errorf("spanmetrics: %d samples refused, the first: %w", b.refused, b.firstRefusal)
	}
	return nil
}

func (o *flushState) init(lbls []labels.Labels) {
	o.lbls = lbls
	o.refs = make([]storage.SeriesRef, len(lbls))
}

// batch is one flush's transaction.
type batch struct {
	app          storage.AppenderV2
	t            int64
	refused      int
	firstRefusal error
	err          error // a storage failure: the batch is lost
}

// add appends sample series i of a label set. Before the label set's first
// committed sample it appends a zero at st, so that increase() over its
// first interval counts what happened in it.
func (b *batch) add(out *flushState, i int, st int64, v float64, opts *storage.AOptions) {
	if b.err != nil {
		return
	}
	if !out.flushed && st < b.t {
		// Best effort, like Prometheus' own start-timestamp zeros: after a
		// crash the series may already hold later samples.
		if ref, err := b.app.Append(out.refs[i], out.lbls[i], 0, st, 0, nil, nil, *opts); err == nil {
			out.refs[i] = ref
		}
	}
	ref, err := b.app.Append(out.refs[i], out.lbls[i], st, b.t, v, nil, nil, *opts)
	switch {
	case err == nil:
		out.refs[i] = ref
	case refusal(err):
		b.refused++
		if b.firstRefusal == nil {
			b.firstRefusal = fmt.Errorf("%s: %w", out.lbls[i], err)
		}
	default:
		b.err = err
	}
}

// histSeries is the number of sample series of a histogram: the buckets,
// _sum and _count.
const histSeries = nBuckets + 2

// hist appends h as sample series i to i+histSeries-1.
func (b *batch) hist(out *flushState, i int, st int64, h *hist, opts *storage.AOptions) {
	var cum uint64
	for j, n := range h.buckets {
		cum += n
		b.add(out, i+j, st, float64(cum), opts)
	}
	b.add(out, i+nBuckets, st, float64(h.sumNs)/1e9, opts)
	b.add(out, i+nBuckets+1, st, float64(h.count), opts)
}

// refusal tells a sample the store refused (skipped, the rest goes on) from
// a storage failure.
func refusal(err error) bool {
	return errors.Is(err, storage.ErrOutOfOrderSample) ||
		errors.Is(err, storage.ErrOutOfBounds) ||
		errors.Is(err, storage.ErrTooOldSample) ||
		errors.Is(err, storage.ErrDuplicateSampleForTimestamp)
}

// external adds Options.ExternalLabels to each label set (once per series:
// flushes reuse the result).
func (r *Recorder) external(sets []labels.Labels) []labels.Labels {
	if r.externalLabels.IsEmpty() {
		return sets
	}
	for i, ls := range sets {
		b := labels.NewBuilder(ls)
		r.externalLabels.Range(func(l labels.Label) { b.Set(l.Name, l.Value) })
		sets[i] = b.Labels()
	}
	return sets
}

func spanLabels(k spanKey) []labels.Labels {
	kv := []string{
		"service_name", k.service,
		"span_name", k.name,
		"span_kind", spanKinds[k.kind],
		"status_code", statusCodes[k.status],
	}
	out := make([]labels.Labels, 0, 1+histSeries)
	out = append(out, named(MetricSpanCalls, kv))
	return appendHistLabels(out, MetricSpanDuration, kv)
}

func edgeLabels(k edgeKey) []labels.Labels {
	kv := []string{"client", k.client, "server", k.server, "connection_type", connectionTypes[k.conn]}
	out := make([]labels.Labels, 0, 2+2*histSeries)
	out = append(out, named(MetricGraphRequests, kv), named(MetricGraphFailed, kv))
	out = appendHistLabels(out, MetricGraphServerSeconds, kv)
	return appendHistLabels(out, MetricGraphClientSeconds, kv)
}

func logLabels(k logKey) []labels.Labels {
	return []labels.Labels{named(MetricLogRecords, []string{"service_name", k.service, "severity", k.severity.String()})}
}

func appendHistLabels(out []labels.Labels, name string, kv []string) []labels.Labels {
	for _, le := range bucketLabels {
		out = append(out, named(name+"_bucket", append(kv[:len(kv):len(kv)], "le", le)))
	}
	return append(out, named(name+"_sum", kv), named(name+"_count", kv))
}

// named returns the labels kv with metric name name; empty values are
// dropped, as Prometheus does.
func named(name string, kv []string) labels.Labels {
	b := labels.NewScratchBuilder(len(kv)/2 + 1)
	b.Add(model.MetricNameLabel, name)
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			b.Add(kv[i], kv[i+1])
		}
	}
	b.Sort()
	return b.Labels()
}
