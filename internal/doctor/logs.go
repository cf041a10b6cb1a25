package doctor

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/vigil-observability/vigil/internal/storage"
)

// LogsCheck finds traced services whose logs mostly carry no trace id
// (logs_without_trace): from a trace, nobody can get to those logs.
type LogsCheck struct {
	Logs  storage.LogStatsReader
	Spans storage.REDReader
	// Window is the time looked at (15m if 0).
	Window time.Duration
	// Threshold is the share of logs without a trace id above which a
	// service is reported (0.1 if 0); MinLogs the fewest logs worth judging
	// (20 if 0).
	Threshold float64
	MinLogs   int64
	Now       func() time.Time
}

// Name implements Check.
func (c LogsCheck) Name() string { return "logs" }

// Run implements Check.
func (c LogsCheck) Run(ctx context.Context) ([]Finding, error) {
	window := cmp.Or(c.Window, 15*time.Minute)
	threshold := cmp.Or(c.Threshold, 0.1)
	minLogs := cmp.Or(c.MinLogs, 20)
	now := clockOf(c.Now)
	end := now()
	start := end.Add(-window)
	rows, err := c.Spans.RED(ctx, storage.REDQuery{Start: start, End: end})
	if err != nil {
		return nil, fmt.Errorf("doctor: traced services: %w", err)
	}
	traced := map[string]bool{}
	for _, r := range rows {
		traced[r.Service] = r.Calls > 0
	}
	stats, err := c.Logs.LogTraceStats(ctx, start, end)
	if err != nil {
		return nil, fmt.Errorf("doctor: log stats: %w", err)
	}
	var out []Finding
	for _, s := range stats {
		if !traced[s.Service] || s.Total < minLogs {
			continue
		}
		without := s.Total - s.WithTrace
		ratio := float64(without) / float64(s.Total)
		if ratio <= threshold {
			continue
		}
		out = append(out, Finding{
			Code: "logs_without_trace", Severity: Warning, Subject: s.Service,
			Evidence: Evidence{
				Summary: fmt.Sprintf("%d of its %d log records (%.0f%%) carry no trace id, though the service sends traces", without, s.Total, 100*ratio),
				Values:  map[string]float64{"logs": float64(s.Total), "without_trace": float64(without), "ratio": ratio},
				Window:  lastWindow(window),
			},
			Cause: "the service logs outside the request's context: the logger is not given the context (slog.Info instead of slog.InfoContext), or its handler does not read the span from it",
			Fix:   "log with the request context (slog.InfoContext(ctx, ...)) through a handler that adds trace_id and span_id, such as the vigil SDK's logger; find the lines with /api/logs?service=" + s.Service,
		})
	}
	return out, nil
}
