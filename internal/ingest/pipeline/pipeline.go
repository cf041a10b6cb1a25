package pipeline

import (
	"context"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/ingest"
	"github.com/vigil-observability/vigil/internal/storage"
)

// Traces is the bounded group-commit queue in front of a storage.TraceWriter.
// It implements ingest.TracesConsumer.
type Traces struct{ q *queue[ptrace.Traces] }

// NewTraces starts the queue's writer. Call Close to drain and stop it.
// Each function in stored sees every batch once it is durable, before its
// requests are answered (the span metrics recorder); it must be quick and
// must not keep the batch.
func NewTraces(w storage.TraceWriter, opts Options, stored ...func(ptrace.Traces)) *Traces {
	return &Traces{q: newQueue(batchOps[ptrace.Traces]{
		signal: ingest.SignalTraces,
		count:  func(td ptrace.Traces) int { return td.SpanCount() },
		merge:  func(dst, src ptrace.Traces) { src.ResourceSpans().MoveAndAppendTo(dst.ResourceSpans()) },
		write:  w.WriteTraces,
		stored: stored,
	}, opts)}
}

// ConsumeTraces queues td and returns once it is durable. The queue takes
// ownership of td: the caller must not use it afterwards.
func (t *Traces) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	return t.q.submit(ctx, td)
}

// Close drains the queue: everything admitted is written before it returns.
func (t *Traces) Close(ctx context.Context) error { return t.q.close(ctx) }

// Logs is the bounded group-commit queue in front of a storage.LogWriter.
// It implements ingest.LogsConsumer.
type Logs struct{ q *queue[plog.Logs] }

// NewLogs starts the queue's writer. Call Close to drain and stop it.
// stored is as for NewTraces.
func NewLogs(w storage.LogWriter, opts Options, stored ...func(plog.Logs)) *Logs {
	return &Logs{q: newQueue(batchOps[plog.Logs]{
		signal: ingest.SignalLogs,
		count:  func(ld plog.Logs) int { return ld.LogRecordCount() },
		merge:  func(dst, src plog.Logs) { src.ResourceLogs().MoveAndAppendTo(dst.ResourceLogs()) },
		write:  w.WriteLogs,
		stored: stored,
	}, opts)}
}

// ConsumeLogs queues ld and returns once it is durable; the queue takes ownership of ld.
func (l *Logs) ConsumeLogs(ctx context.Context, ld plog.Logs) error { return l.q.submit(ctx, ld) }

// Close drains the queue.
func (l *Logs) Close(ctx context.Context) error { return l.q.close(ctx) }

var (
	_ ingest.TracesConsumer = (*Traces)(nil)
	_ ingest.LogsConsumer   = (*Logs)(nil)
)
