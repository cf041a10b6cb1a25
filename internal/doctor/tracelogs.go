package doctor

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/vigil-observability/vigil/internal/storage"
)

// LogTraceCoverageReader tells which trace ids of the logs have spans;
// storage.DiagnosisReader satisfies it.
type LogTraceCoverageReader interface {
	LogTraceCoverage(ctx context.Context, q storage.LogTraceQuery) ([]storage.ServiceLogTraces, error)
}

// TraceLogsCheck finds services whose logs name traces that never arrive
// (trace_logs_mismatch): from such a log line, nobody gets to the trace. It
// looks at the logs of the Window ending Grace ago, and at the spans that
// started from Lookback before those logs until now, so that a trace whose
// spans started a little earlier, or arrived a little later, is found.
type TraceLogsCheck struct {
	Coverage LogTraceCoverageReader
	// Window is the time of the logs looked at (15m if 0); it ends Grace
	// ago (1m if 0). Lookback is how long before the logs the spans are
	// looked for (5m if 0).
	Window, Grace, Lookback time.Duration
	// Threshold is the share of missing traces above which a service is
	// reported (0.1 if 0); MinTraceIDs the fewest distinct trace ids worth
	// judging (20 if 0).
	Threshold   float64
	MinTraceIDs int64
	Now         func() time.Time
}

// Name implements Check.
func (c TraceLogsCheck) Name() string { return "trace_logs" }

// Run implements Check.
func (c TraceLogsCheck) Run(ctx context.Context) ([]Finding, error) {
	window := cmp.Or(c.Window, 15*time.Minute)
	grace := cmp.Or(c.Grace, time.Minute)
	lookback := cmp.Or(c.Lookback, 5*time.Minute)
	threshold := cmp.Or(c.Threshold, 0.1)
	minIDs := cmp.Or(c.MinTraceIDs, 20)
	now := clockOf(c.Now)
	end := now()
	q := storage.LogTraceQuery{Start: end.Add(-grace - window), End: end.Add(-grace), SpanEnd: end}
	q.SpanStart = q.Start.Add(-lookback)
	rows, err := c.Coverage.LogTraceCoverage(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("doctor: log trace coverage: %w", err)
	}
	var out []Finding
	for _, r := range rows {
		if r.TraceIDs < minIDs || r.Missing <= 0 {
			continue
		}
		ratio := float64(r.Missing) / float64(r.TraceIDs)
		if ratio <= threshold {
			continue
		}
		samples := make([]string, 0, min(len(r.Samples), MaxSamples))
		for _, id := range r.Samples[:min(len(r.Samples), MaxSamples)] {
			samples = append(samples, id.String())
		}
		f := Finding{
			Code: "trace_logs_mismatch", Severity: Warning, Subject: r.Service,
			Evidence: Evidence{
				Summary: fmt.Sprintf("%d of the %d trace ids in its logs (%.0f%%) belong to traces of which no span arrived", r.Missing, r.TraceIDs, 100*ratio),
				Values:  map[string]float64{"trace_ids": float64(r.TraceIDs), "missing": float64(r.Missing), "ratio": ratio},
				Window:  q.Start.UTC().Format(time.RFC3339) + " to " + q.End.UTC().Format(time.RFC3339),
				Samples: samples,
			},
		}
		if r.Missing == r.TraceIDs {
			f.Cause = fmt.Sprintf("none of the traces %s's logs name arrives: its logger stamps trace ids, but its spans are not exported to vigil, are all sampled out, or are refused", r.Service)
			f.Fix = fmt.Sprintf("make %s export its spans to vigil (OTEL_EXPORTER_OTLP_ENDPOINT, or the vigil SDK's vigil.New with the endpoint set) with a sampler that keeps traces (sdktrace.ParentBased(sdktrace.AlwaysSample()) or a ratio); look for export errors in %s's logs and for spans vigil refused in vigil_rejected_total{signal=\"traces\"}", r.Service, r.Service)
		} else {
			f.Cause = fmt.Sprintf("%s logs the trace ids of traces that are not kept: head sampling drops traces whose logs are kept (the logger stamps the trace id of unsampled spans too), or its span exporter drops spans", r.Service)
			f.Fix = fmt.Sprintf("sample by parent with one ratio in every service (sdktrace.ParentBased(sdktrace.TraceIDRatioBased(r))) and stamp trace ids on %s's log records only when span.SpanContext().IsSampled(), or keep every trace of %s; if it already keeps them all, look for export errors in its logs and for spans vigil refused in vigil_rejected_total{signal=\"traces\"}", r.Service, r.Service)
		}
		out = append(out, f)
	}
	return out, nil
}
