// Package storage defines the boundary between vigil's ingest and query sides
// and its storage backends (embedded, clickhouse, memory for tests).
//
// Writes speak pdata, the OpenTelemetry Collector's data model, so receivers
// hand over what they decoded without another copy. Reads return plain Go
// values and iterators. Metrics do not appear here: they use Prometheus's own
// storage.Appendable and storage.Queryable so that PromQL, rules and the
// Prometheus API never know which backend is below.
package storage

import (
	"context"
	"errors"
	"iter"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Sentinel errors shared by every backend. Callers test them with errors.Is.
var (
	// ErrTraceNotFound is returned by GetTrace when no span of the trace is stored.
	ErrTraceNotFound = errors.New("storage: trace not found")
	// ErrClosed is returned by any method called after Close.
	ErrClosed = errors.New("storage: closed")
	// ErrUnavailable marks a transient failure (backend down, disk full):
	// the caller may retry later and must not acknowledge the data.
	ErrUnavailable = errors.New("storage: unavailable")
)

// TraceWriter persists spans.
//
// WriteTraces returns nil only once every span in td is durable: it survives
// a crash (kill -9) of the process right after the call returns. It may be
// called from several goroutines at once. The writer must not keep td after
// returning.
type TraceWriter interface {
	WriteTraces(ctx context.Context, td ptrace.Traces) error
}

// TraceReader reads spans back.
type TraceReader interface {
	// GetTrace returns every stored span of the trace, grouped by resource
	// and scope as written. It returns ErrTraceNotFound when there is none.
	GetTrace(ctx context.Context, id pcommon.TraceID) (ptrace.Traces, error)
}

// LogWriter persists log records with the same durability contract as
// TraceWriter.WriteTraces.
type LogWriter interface {
	WriteLogs(ctx context.Context, ld plog.Logs) error
}

// LogQuery selects log records. Zero values mean "no filter".
type LogQuery struct {
	TraceID pcommon.TraceID
	Service string
	// Text matches records whose body contains it, case-insensitively.
	Text string
	// Start is inclusive, End exclusive. A zero End means "now and later".
	Start, End time.Time
	// Limit caps the number of records; 0 means DefaultLogLimit.
	Limit int
}

// DefaultLogLimit is the number of records FindLogs yields when LogQuery.Limit is 0.
const DefaultLogLimit = 100

// LogRecord is one stored log record as the read side sees it.
type LogRecord struct {
	Timestamp         time.Time
	ObservedTimestamp time.Time
	SeverityNumber    plog.SeverityNumber
	SeverityText      string
	// Body is the body as text: a string body as is, any other kind as JSON.
	Body    string
	Service string
	TraceID pcommon.TraceID
	SpanID  pcommon.SpanID
	// Attributes and ResourceAttributes hold every attribute as written,
	// with pcommon's raw Go types (string, int64, float64, bool, []byte, []any, map[string]any).
	Attributes         map[string]any
	ResourceAttributes map[string]any
	ScopeName          string
}

// LogReader reads log records back.
type LogReader interface {
	// FindLogs yields the matching records newest first, at most q.Limit of
	// them. An error ends the sequence.
	FindLogs(ctx context.Context, q LogQuery) iter.Seq2[LogRecord, error]
}

// Retainer is an optional capability of backends that drop old data in
// whole partitions. Callers find it by type assertion.
type Retainer interface {
	// DropBefore removes every partition whose data all lies before t and
	// reports how many it removed.
	DropBefore(ctx context.Context, t time.Time) (int, error)
}

// SpanLogStore is everything a backend for spans and logs provides.
type SpanLogStore interface {
	TraceWriter
	TraceReader
	LogWriter
	LogReader
	Close() error
}
