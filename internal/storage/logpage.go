package storage

import (
	"context"
	"iter"
)

// LogPageSize is how many records a backend reads in its first query when
// FindLogs is asked for more. It bounds what one FindLogs holds in memory:
// the Loki API asks for up to millions of entries, and a consumer that
// stops early should not have paid for reading them all.
const LogPageSize = 2000

// maxPageGrowth bounds how far pages grow: each page after the first is
// twice the one before, up to LogPageSize times this. Every page is a
// query that sorts what it matches again, so a long read in pages of a
// fixed size costs the square of its length; doubling makes it linear,
// and the bound keeps a page within a few tens of megabytes.
const maxPageGrowth = 16

// PageLogs implements FindLogs on top of find, which returns at most
// q.Limit records of q in FindLogs' order (q.Limit above 0). It yields up
// to q.Limit records (DefaultLogLimit when 0), asking find for pages of at
// most page records at first, growing as it goes on, each continuing after the last one of the page before
// (LogQuery.After). find runs to completion before its records are
// yielded, so a backend holds no lock or connection while the consumer
// takes its time or calls the store again.
func PageLogs(ctx context.Context, q LogQuery, page int, find func(context.Context, LogQuery) ([]LogRecord, error)) iter.Seq2[LogRecord, error] {
	return func(yield func(LogRecord, error) bool) {
		left := q.Limit
		if left <= 0 {
			left = DefaultLogLimit
		}
		for first := true; left > 0; first = false {
			if !first && page < LogPageSize*maxPageGrowth {
				page *= 2
			}
			pq := q
			pq.Limit = min(left, page)
			recs, err := find(ctx, pq)
			if err != nil {
				yield(LogRecord{}, err)
				return
			}
			for _, r := range recs {
				if !yield(r, nil) {
					return
				}
			}
			if len(recs) < pq.Limit {
				return // the store has no more
			}
			left -= len(recs)
			q.After = recs[len(recs)-1].Cursor
		}
	}
}
