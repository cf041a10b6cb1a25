// Package querylimit bounds what one query may cost, so that no query (or
// burst of them) can take the process past its memory limit. It wraps the
// PromQL engine: every query is checked against what the engine will
// really evaluate (Plan.Check), waits for one of a fixed number of slots,
// and is bounded in the series it selects, the samples it holds
// (the engine's max samples) and the size of the answer it produces.
package querylimit

import (
	"time"
)

// Limits are the per-query bounds. A zero field means no bound, except
// where DefaultsFor fills it.
type Limits struct {
	// Timeout ends a query's evaluation (Prometheus's --query.timeout).
	Timeout time.Duration
	// MaxSamples is the most samples one query may hold in memory at once
	// (Prometheus's --query.max-samples); remote read is bounded by it too.
	MaxSamples int
	// MaxSeries is the most series one query may select from storage.
	MaxSeries int
	// MaxResponseBytes bounds the estimated size of one answer's encoding.
	MaxResponseBytes int64
	// MaxConcurrency is how many queries run at once
	// (Prometheus's --query.max-concurrency); others wait up to QueueWait.
	MaxConcurrency int
	// QueueWait is how long a query waits for a slot before it is refused
	// as overloaded.
	QueueWait time.Duration
	// MaxTraceSpans is the most spans one trace read by id returns; the
	// rest are left out and the answer says so.
	MaxTraceSpans int
}

// Defaults without a memory limit: Prometheus's own flag defaults, plus a
// bound on spans per trace (Jaeger has none, but a trace of a million spans
// is a bug in the instrumentation, not something to render).
const (
	DefaultTimeout        = 2 * time.Minute
	DefaultMaxSamples     = 50_000_000
	DefaultMaxConcurrency = 20
	DefaultQueueWait      = 5 * time.Second
	DefaultMaxTraceSpans  = 100_000
)

// Costs used to turn a memory limit into per-query bounds. They are upper
// estimates of what one unit costs while a query runs and its answer is
// encoded, measured on the engine and the JSON encoders (docs/reliability.md).
const (
	// querySlotBytes is the memory one running query is planned to take;
	// the concurrency is the query share of the memory limit over it.
	querySlotBytes = 128 << 20
	// bytesPerSample: 16 bytes in the engine, a few copies while the
	// matrix is sorted and encoded as JSON (~30 bytes of text each).
	bytesPerSample = 128
	// bytesPerSeries: labels, chunk iterators and per-series buffers.
	bytesPerSeries = 1400
	// bytesPerSpan: a span as pdata, as Jaeger's model and as JSON,
	// for spans of typical size (a few kilobytes of JSON).
	bytesPerSpan = 8 << 10
)

// DefaultsFor returns the limits for a process that should stay under
// memoryLimit bytes (0: no limit, Prometheus's defaults). Queries get a
// quarter of the memory limit, shared by MaxConcurrency slots; each slot's
// share bounds the samples, series, answer size and spans of one query.
// At 1 GiB: 8 queries at once, 262,144 samples, 23,967 series, 12 MiB per
// answer and 4,096 spans per trace.
func DefaultsFor(memoryLimit int64) Limits {
	l := Limits{
		Timeout:        DefaultTimeout,
		MaxSamples:     DefaultMaxSamples,
		MaxConcurrency: DefaultMaxConcurrency,
		QueueWait:      DefaultQueueWait,
		MaxTraceSpans:  DefaultMaxTraceSpans,
	}
	if memoryLimit <= 0 {
		return l
	}
	l.MaxConcurrency = int(min(max(memoryLimit/querySlotBytes, 2), DefaultMaxConcurrency))
	perQuery := memoryLimit / 4 / int64(l.MaxConcurrency)
	l.MaxSamples = int(perQuery / bytesPerSample)
	l.MaxSeries = int(perQuery / bytesPerSeries)
	l.MaxResponseBytes = perQuery * 3 / 8
	l.MaxTraceSpans = int(min(perQuery/bytesPerSpan, DefaultMaxTraceSpans))
	return l
}

// TraceBytes is the budget of stored span data one trace answer may read:
// a quarter of MaxResponseBytes, since spans take about four times their
// stored size on the way out (pdata, Jaeger's model, the JSON encoding).
// 0 means no bound.
func (l Limits) TraceBytes() int64 { return l.MaxResponseBytes / 4 }

// Fill returns l with its zero fields taken from d.
func (l Limits) Fill(d Limits) Limits {
	if l.Timeout == 0 {
		l.Timeout = d.Timeout
	}
	if l.MaxSamples == 0 {
		l.MaxSamples = d.MaxSamples
	}
	if l.MaxSeries == 0 {
		l.MaxSeries = d.MaxSeries
	}
	if l.MaxResponseBytes == 0 {
		l.MaxResponseBytes = d.MaxResponseBytes
	}
	if l.MaxConcurrency == 0 {
		l.MaxConcurrency = d.MaxConcurrency
	}
	if l.QueueWait == 0 {
		l.QueueWait = d.QueueWait
	}
	if l.MaxTraceSpans == 0 {
		l.MaxTraceSpans = d.MaxTraceSpans
	}
	return l
}
