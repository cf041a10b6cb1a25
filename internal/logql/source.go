package logql

import (
	"context"
	"iter"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// Source is where a query reads log streams from. The engine asks for the
// streams first, as Loki reads its index before its chunks, then for their
// entries; a store adapts its own log model to this one (which of its
// attributes are stream labels, which structured metadata).
type Source interface {
	// Streams returns the streams that have entries in [start, end) and
	// whose labels match every matcher, with their counts over that range.
	Streams(ctx context.Context, matchers []*Matcher, start, end time.Time) ([]Stream, error)
	// Entries yields the entries of q.Streams in [q.Start, q.End), merged
	// across streams in time order (oldest first when q.Forward, else
	// newest first), at most q.Limit of them when it is above 0. An error
	// ends the sequence.
	Entries(ctx context.Context, q EntryQuery) iter.Seq2[Entry, error]
}

// Stream is the set of entries that share one set of stream labels.
type Stream struct {
	// ID is the source's handle for the stream, given back in EntryQuery.
	ID string
	// Labels are the stream labels, sorted.
	Labels labels.Labels
	// Entries and Bytes (of the lines) count what the stream holds in the
	// range Streams was asked about.
	Entries, Bytes int64
}

// Entry is one log line.
type Entry struct {
	// Stream indexes the EntryQuery.Streams the entry belongs to.
	Stream int
	// Timestamp is in Unix nanoseconds.
	Timestamp int64
	Line      string
	// Metadata is the entry's structured metadata: labels that are not
	// part of its stream's identity (trace_id, span_id, detected_level and
	// the record's own attributes), sorted.
	Metadata labels.Labels
}

// EntryQuery selects the entries Source.Entries yields.
type EntryQuery struct {
	Streams []Stream
	// Start is inclusive, End exclusive.
	Start, End time.Time
	// Contains are substrings every wanted line holds, compared
	// case-insensitively: a prefilter a source may push down to its store
	// or ignore. The engine applies the query's line filters itself.
	Contains []string
	// Forward asks for the oldest entries first.
	Forward bool
	// Limit caps the entries yielded; 0 means no cap.
	Limit int
	// Want is how many entries the engine means to keep when it sets no
	// Limit because its pipeline drops some: a source that reads its store
	// in pages may size its first page by it, so that the newest 100 lines
	// containing a word do not cost a first page of thousands. 0 means no
	// hint.
	Want int
}
