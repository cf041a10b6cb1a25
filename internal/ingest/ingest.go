// Package ingest holds what every receiver shares: the consumer interfaces
// receivers hand decoded data to, and the errors that decide how a receiver
// answers its client.
package ingest

import (
	"context"
	"errors"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

var (
	// ErrOverloaded means the write path is full. The data was not accepted
	// and the client should retry later (HTTP 429/503 with Retry-After,
	// gRPC UNAVAILABLE with RetryInfo).
	ErrOverloaded = errors.New("ingest: overloaded, retry later")
	// ErrUnavailable means storage failed transiently; nothing was
	// acknowledged and the client may retry (HTTP 503, gRPC UNAVAILABLE).
	ErrUnavailable = errors.New("ingest: storage unavailable, retry later")
)

// TracesConsumer accepts decoded, validated spans. ConsumeTraces returns nil
// only once the data is durable; it may be called concurrently.
type TracesConsumer interface {
	ConsumeTraces(ctx context.Context, td ptrace.Traces) error
}

// LogsConsumer accepts decoded, validated log records, durable on nil return.
type LogsConsumer interface {
	ConsumeLogs(ctx context.Context, ld plog.Logs) error
}

// MetricsConsumer accepts decoded OTLP metrics, durable on nil return.
type MetricsConsumer interface {
	ConsumeMetrics(ctx context.Context, md pmetric.Metrics) error
}

// TracesConsumerFunc adapts a function to TracesConsumer.
type TracesConsumerFunc func(context.Context, ptrace.Traces) error

// ConsumeTraces calls f.
func (f TracesConsumerFunc) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	return f(ctx, td)
}

// LogsConsumerFunc adapts a function to LogsConsumer.
type LogsConsumerFunc func(context.Context, plog.Logs) error

// ConsumeLogs calls f.
func (f LogsConsumerFunc) ConsumeLogs(ctx context.Context, ld plog.Logs) error { return f(ctx, ld) }

// MetricsConsumerFunc adapts a function to MetricsConsumer.
type MetricsConsumerFunc func(context.Context, pmetric.Metrics) error

// ConsumeMetrics calls f.
func (f MetricsConsumerFunc) ConsumeMetrics(ctx context.Context, md pmetric.Metrics) error {
	return f(ctx, md)
}

// Signal names used as the "signal" label of vigil's own metrics.
const (
	SignalTraces   = "traces"
	SignalLogs     = "logs"
	SignalMetrics  = "metrics"
	SignalProfiles = "profiles"
)
