// Package storage defines the boundary between vigil's ingest and query sides
// and its storage backends (embedded, clickhouse, memory for tests).
//
// Writes speak pdata, the OpenTelemetry Collector's data model, so receivers
// hand over what they decoded without another copy. Reads return plain Go
// values and iterators. Metrics use Prometheus's own storage.AppendableV2
// and storage.Queryable (together a MetricStore) so that PromQL, rules and
// the Prometheus API never know which backend is below; what only some
// metric backends offer is found once, as MetricCapabilities.
package storage

import (
	"context"
	"errors"
	"iter"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// DefaultRetention is how long every backend keeps data unless configured
// otherwise (retention in vigil.yaml): a week.
const DefaultRetention = 7 * 24 * time.Hour

// DefaultDuckDBMemoryLimit caps the embedded store's DuckDB buffer pool
// (DuckDB's syntax). DuckDB's own default, 80% of RAM, would starve the
// Prometheus TSDB sharing the process. It lives here, not in the embedded
// package, so that the configuration can name it without linking DuckDB.
const DefaultDuckDBMemoryLimit = "1GB"

// Sentinel errors shared by every backend. Callers test them with errors.Is.
var (
	// ErrTraceNotFound is returned by GetTrace when no span of the trace is stored.
	ErrTraceNotFound = errors.New("storage: trace not found")
	// ErrClosed is returned by any method called after Close.
	ErrClosed = errors.New("storage: closed")
	// ErrUnavailable marks a transient failure (backend down, disk full):
	// the caller may retry later and must not acknowledge the data.
	ErrUnavailable = errors.New("storage: unavailable")
	// ErrInvalidQuery marks a query the backend cannot run as given (a
	// malformed cursor, a tag key it cannot address): the caller's fault,
	// answered with 400.
	ErrInvalidQuery = errors.New("storage: invalid query")
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

// MaxTraceTags bounds TraceQuery.Tags, so that a search's SQL stays well
// inside the backends' query size and expression depth limits.
const MaxTraceTags = 64

// TraceQuery selects traces for search. A trace matches when one of its
// spans satisfies every field that is set; zero values mean "no filter".
type TraceQuery struct {
	// Service is the span's resource service.name.
	Service string
	// Operation is the span's name.
	Operation string
	// Tags must all hold on the same span. Each value is compared as text
	// with the span's attribute of that key, else its resource's. Three
	// keys have fixed meanings, as in Jaeger: "error" ("true": the span's
	// status is Error), "span.kind" (server, client, producer, consumer,
	// internal) and "otel.status_code" (OK, ERROR, UNSET). At most
	// MaxTraceTags; backends refuse more with ErrInvalidQuery.
	Tags map[string]string
	// MinDuration and MaxDuration bound the matching span's duration
	// (inclusive); zero means unbounded.
	MinDuration, MaxDuration time.Duration
	// Start (inclusive) and End (exclusive) bound the matching span's start
	// time. A zero End means "now and later".
	Start, End time.Time
	// Limit caps the number of traces; 0 means DefaultTraceLimit.
	Limit int
}

// DefaultTraceLimit is the number of traces FindTraces returns when
// TraceQuery.Limit is 0.
const DefaultTraceLimit = 20

// TraceSummary describes a found trace without its spans.
type TraceSummary struct {
	TraceID pcommon.TraceID
	// Start is the earliest span start; Duration reaches the latest span end.
	Start    time.Time
	Duration time.Duration
	// SpanCount and ErrorCount count every stored span of the trace and
	// those whose status is Error.
	SpanCount, ErrorCount int
	// RootService and RootName describe the span without a parent; both
	// are empty when it has not arrived (yet).
	RootService, RootName string
	// Services lists the trace's services by name.
	Services []ServiceSpans
}

// ServiceSpans counts one service's spans in a trace.
type ServiceSpans struct {
	Name          string
	Spans, Errors int
}

// Operation is a span name seen for a service, with the span kind.
type Operation struct {
	Name string
	Kind ptrace.SpanKind
}

// TraceSearcher finds traces and lists what can be searched for.
type TraceSearcher interface {
	// FindTraces returns the matching traces, the one whose matching span
	// started last first, at most q.Limit of them.
	FindTraces(ctx context.Context, q TraceQuery) ([]TraceSummary, error)
	// Services lists every service with stored spans, sorted.
	Services(ctx context.Context) ([]string, error)
	// Operations lists the service's span names and kinds, sorted by name
	// then kind.
	Operations(ctx context.Context, service string) ([]Operation, error)
}

// TraceIDFinder is an optional capability of a TraceSearcher: the ids
// FindTraces would return, in its order, without the summaries, which
// cost a second read of every span of the traces found. Jaeger's
// /api/traces reads the traces whole afterwards and needs only the ids.
// A trace dropped between the search and a read of it may be among them.
// Found by type assertion, so the TraceSearcher interface stays small.
type TraceIDFinder interface {
	FindTraceIDs(ctx context.Context, q TraceQuery) ([]pcommon.TraceID, error)
}

// REDQuery asks for request rate, errors and duration computed from the
// stored spans whose start lies in [Start, End).
type REDQuery struct {
	Start, End time.Time
	// Service, when set, makes one row per operation (span name and kind)
	// of that service, over all its spans. When empty there is one row per
	// service over its requests: its server and consumer spans, or all of
	// its spans if it has neither (a batch job, a client-only service).
	Service string
	// Step, when positive, also fills each row's Bins: the same figures per
	// step-long bin starting at Start.
	Step time.Duration
}

// REDRow is one service's or operation's figures.
type REDRow struct {
	Service string
	// Operation and Kind are set in rows of one service's operations.
	Operation string
	Kind      ptrace.SpanKind
	// Calls counts the spans; Errors those with status Error.
	Calls, Errors int64
	// First is the start of the row's earliest span in the range: where
	// its data begins, so that a rate need not be averaged over the part
	// of the range before anything was sent (REDCovered).
	First time.Time
	// P50, P95 and P99 are duration quantiles, interpolated linearly
	// between the closest ranks.
	P50, P95, P99 time.Duration
	// Bins holds the bins that have spans, oldest first.
	Bins []REDBin
}

// REDBin is a REDRow's figures in one bin.
type REDBin struct {
	Start         time.Time
	Calls, Errors int64
	P99           time.Duration
}

// minREDCovered is the least time REDCovered reports when the range is
// longer: a first span an instant before End says nothing about a rate, and
// dividing by that instant would make one call a huge one.
const minREDCovered = 10 * time.Second

// REDCovered is the part of q's range that rows have data for: from the
// earliest First of the rows (q.Start if that is earlier) to q.End, at
// least ten seconds (or the whole range if shorter). Rates divide by it
// rather than by the range, so an hour's range picked minutes after spans
// began to arrive shows the rate of those minutes, not a 60th of it.
// Without rows (or without First) it is the whole range.
func REDCovered(q REDQuery, rows []REDRow) time.Duration {
	var from time.Time
	for _, r := range rows {
		if !r.First.IsZero() && (from.IsZero() || r.First.Before(from)) {
			from = r.First
		}
	}
	if from.IsZero() || from.Before(q.Start) {
		from = q.Start
	}
	return max(q.End.Sub(from), min(q.End.Sub(q.Start), minREDCovered))
}

// REDReader computes RED figures from stored spans.
type REDReader interface {
	// RED returns the rows sorted by service, then operation and kind.
	RED(ctx context.Context, q REDQuery) ([]REDRow, error)
}

// ServiceLogs counts one service's log records and those that carry a
// trace id.
type ServiceLogs struct {
	Service          string
	Total, WithTrace int64
}

// LogStatsReader summarises stored logs for diagnosis.
type LogStatsReader interface {
	// LogTraceStats counts, per service, the log records stamped in
	// [start, end) and how many of them carry a trace id, sorted by service.
	LogTraceStats(ctx context.Context, start, end time.Time) ([]ServiceLogs, error)
}

// SpanShape is what diagnosis needs of a span: how it connects to the
// others and when it ran, without its attributes.
type SpanShape struct {
	TraceID pcommon.TraceID
	SpanID  pcommon.SpanID
	// ParentSpanID is empty for a root span.
	ParentSpanID pcommon.SpanID
	Service      string
	Name         string
	Kind         ptrace.SpanKind
	// Start and End are in Unix nanoseconds, as stored. End is 0 when the
	// span was sent without one.
	Start, End int64
	// Peer is the other side of a call, as the span's own attributes name
	// it: for client and producer spans peer.service, else
	// server.address[:server.port], else net.peer.name[:net.peer.port];
	// for server and consumer spans server.address[:server.port], else
	// net.host.name[:net.host.port]. Values are read as text; an empty
	// value counts as unset, and a port without its host is ignored.
	// Empty when none is set, and for other kinds.
	Peer string
}

// SpanShapeQuery selects spans by start time.
type SpanShapeQuery struct {
	// Start (inclusive) and End (exclusive) bound the span's start time.
	Start, End time.Time
	// Limit caps the spans returned; 0 means no cap. When more spans
	// match, the earliest-starting Limit of them are returned.
	Limit int
}

// ServiceLogTraces tells, for one service, how many distinct trace ids its
// logs carried and how many of those traces have no stored span.
type ServiceLogTraces struct {
	Service string
	// TraceIDs counts the distinct trace ids in the service's logs;
	// Missing those of them of which no span is stored in the span window.
	TraceIDs, Missing int64
	// Samples are up to five of the missing trace ids, smallest first
	// (compared as bytes); nil when none is missing.
	Samples []pcommon.TraceID
}

// LogTraceQuery selects the logs and the spans LogTraceCoverage compares.
type LogTraceQuery struct {
	// Start (inclusive) and End (exclusive) bound the log records'
	// timestamps (the observed time for records sent without one, as
	// everywhere else). Only records that carry a trace id count.
	Start, End time.Time
	// SpanStart and SpanEnd bound the start times of the spans looked for:
	// a trace id counts as present when one span of it started in
	// [SpanStart, SpanEnd).
	SpanStart, SpanEnd time.Time
}

// DiagnosisReader reads what the doctor's trace checks look at.
type DiagnosisReader interface {
	// SpanShapes returns the shapes of the spans that started in
	// [q.Start, q.End), ordered by start time (ties in any order).
	SpanShapes(ctx context.Context, q SpanShapeQuery) ([]SpanShape, error)
	// LogTraceCoverage returns, per service, the distinct trace ids its log
	// records carried and those of which no span is stored, sorted by
	// service. Services whose logs carried no trace id are left out.
	LogTraceCoverage(ctx context.Context, q LogTraceQuery) ([]ServiceLogTraces, error)
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
	// Terms must all occur in the body, compared case-insensitively as
	// substrings.
	Terms []string
	// Contains must all occur in the body exactly, case-sensitively, as
	// LogQL's |= compares: a store tests a byte substring without
	// lowercasing every body first.
	Contains []string
	// Severities keeps records in any of these bands; empty means all.
	Severities []Severity
	// Attributes must all equal, as text, the record's attribute of that
	// key or else its resource's ("service.name" is the Service column).
	Attributes map[string]string
	// Start is inclusive, End exclusive. A zero End means "now and later".
	Start, End time.Time
	// Limit caps the number of records; 0 means DefaultLogLimit.
	Limit int
	// After continues a previous search: only records that come after the
	// record whose Cursor it is, in FindLogs' order, are returned.
	After string
	// Streams keeps only the records of these resources, given as the
	// LogStream.Key values LogStreams returned; empty means all.
	Streams []string
	// Forward asks FindLogs for the oldest records first.
	Forward bool
}

// LogStream is one resource (one set of resource attributes) that log
// records were written with, as the Loki API sees a stream. Backends that
// keep attributes in the order they were sent (embedded, ClickHouse) see
// the same attributes sent in two orders as two streams; a caller that
// maps resources to labels merges those like any others that map alike.
type LogStream struct {
	// Key identifies the resource among the store's logs, to be passed
	// back in LogQuery.Streams. It is opaque to callers.
	Key     string
	Service string
	// Resource holds the resource attributes, with pcommon's raw Go types.
	Resource map[string]any
	// Entries counts the matching records of the resource, Bytes the
	// bytes of their bodies.
	Entries, Bytes int64
}

// LogStreamReader lists the streams of stored logs.
type LogStreamReader interface {
	// LogStreams groups the records q matches (ignoring Limit, After and
	// Forward) by resource, sorted by Key.
	LogStreams(ctx context.Context, q LogQuery) ([]LogStream, error)
}

// Severity is a band of OpenTelemetry severity numbers, as logs are
// filtered and counted: TRACE is 1-4, DEBUG 5-8 ... FATAL 21-24.
type Severity uint8

// Severity bands. SeverityUnset is severity number 0.
const (
	SeverityUnset Severity = iota
	SeverityTrace
	SeverityDebug
	SeverityInfo
	SeverityWarn
	SeverityError
	SeverityFatal
)

var severityNames = [...]string{"UNSET", "TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"}

// String returns the band's name, e.g. "ERROR".
func (s Severity) String() string {
	if int(s) < len(severityNames) {
		return severityNames[s]
	}
	return "UNSET"
}

// Range returns the band's lowest and highest severity numbers.
func (s Severity) Range() (lo, hi plog.SeverityNumber) {
	if s == SeverityUnset || int(s) >= len(severityNames) {
		return 0, 0
	}
	return plog.SeverityNumber(4*int(s) - 3), plog.SeverityNumber(4 * int(s))
}

// SeverityOf returns the band of a severity number; numbers outside 1-24
// count as SeverityUnset.
func SeverityOf(n plog.SeverityNumber) Severity {
	if n < 1 || n > 24 {
		return SeverityUnset
	}
	return Severity((n + 3) / 4)
}

// ParseSeverity reads a band name, case-insensitively; "warning" and
// "err" are accepted too.
func ParseSeverity(s string) (Severity, bool) {
	switch strings.ToUpper(s) {
	case "WARNING":
		return SeverityWarn, true
	case "ERR":
		return SeverityError, true
	}
	for i, n := range severityNames {
		if strings.EqualFold(n, s) {
			return Severity(i), true
		}
	}
	return 0, false
}

// LogBucket counts the records of one severity band in one time bin.
type LogBucket struct {
	Start    time.Time
	Severity Severity
	Count    int64
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
	// Cursor is the record's position, for LogQuery.After.
	Cursor string
}

// LogReader reads log records back.
type LogReader interface {
	// FindLogs yields the matching records newest first, at most q.Limit of
	// them. An error ends the sequence.
	FindLogs(ctx context.Context, q LogQuery) iter.Seq2[LogRecord, error]
	// LogHistogram counts the records q matches (ignoring Limit and After)
	// per severity band in bins of step, aligned to multiples of step since
	// the Unix epoch, oldest first. Empty bins are left out.
	LogHistogram(ctx context.Context, q LogQuery, step time.Duration) ([]LogBucket, error)
}

// LogCountQuery asks a store to count log records in time bins without
// reading them out: what a Loki metric query such as
// sum by (level) (count_over_time({...}[1m])) needs of its lines.
type LogCountQuery struct {
	// Streams are the LogStream keys of the records counted; required
	// (an empty list counts nothing).
	Streams []string
	// Origin and Step cut time into bins: bin k holds the records stamped
	// in (Origin + k*Step, Origin + (k+1)*Step], closed at its end as a
	// LogQL range is. Step is above 0, and Origin is not after Start.
	Origin time.Time
	Step   time.Duration
	// Start (exclusive) and End (inclusive) bound the records counted.
	Start, End time.Time
	// Contains and NotContains are substrings, compared exactly (case
	// sensitively), that the body must hold and must not hold.
	Contains, NotContains []string
	// Attributes are record attribute keys to count by: each count holds
	// the attribute's value as stored (its typed JSON, see attrenc), or ""
	// for a record without it.
	Attributes []string
}

// LogCount is the records of one stream, bin, severity and set of
// attribute values.
type LogCount struct {
	Stream string
	Bin    int64
	// Severity is the records' band; SeverityText is their severity text
	// when their number is outside 1-24 (else "").
	Severity     Severity
	SeverityText string
	// Attributes holds the values of LogCountQuery.Attributes, in order.
	Attributes []string
	// Entries counts the records, Bytes the bytes of their bodies.
	Entries, Bytes int64
}

// LogCounter is an optional capability of backends that count log records
// where they are stored. Callers find it by type assertion.
type LogCounter interface {
	// CountLogs returns the non-empty counts q asks for, in any order.
	CountLogs(ctx context.Context, q LogCountQuery) ([]LogCount, error)
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
	TraceSearcher
	REDReader
	LogStatsReader
	DiagnosisReader
	LogWriter
	LogReader
	LogStreamReader
	Close() error
}

// TraceReadLimit bounds what GetTrace reads of one trace, so that a trace
// of tens of thousands of large spans cannot take the process past its
// memory limit. Put it in GetTrace's context with WithTraceReadLimit.
// Backends that honour it read spans in start order and stop before either
// bound is passed, setting Truncated; a backend that does not returns the
// whole trace and the caller trims it.
type TraceReadLimit struct {
	// MaxSpans bounds the spans returned (0: no bound).
	MaxSpans int
	// MaxBytes bounds the encoded size of the spans read (0: no bound);
	// at least one span is always returned.
	MaxBytes int64
	// Truncated is set by the backend when spans were left out.
	Truncated bool
	// ReadBytes is set by the backend to the encoded size it read, so
	// that a caller reading several traces can share one budget.
	ReadBytes int64
}

type traceReadLimitKey struct{}

// WithTraceReadLimit returns ctx carrying l for GetTrace.
func WithTraceReadLimit(ctx context.Context, l *TraceReadLimit) context.Context {
	return context.WithValue(ctx, traceReadLimitKey{}, l)
}

// TraceReadLimitFrom returns the limit WithTraceReadLimit put in ctx, or nil.
func TraceReadLimitFrom(ctx context.Context) *TraceReadLimit {
	l, _ := ctx.Value(traceReadLimitKey{}).(*TraceReadLimit)
	return l
}
