package clickhouse

import (
	"context"
	sqldriver "database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/vigil-observability/vigil/internal/storage"
)

// routingWindow is how far back rows are routed to their own day when no
// Retention is set; older timestamps go to the window's first day.
const routingWindow = 90 * 24 * time.Hour

const dayNanos = int64(24 * time.Hour)

// SpanLogOptions configures the ClickHouse span and log store.
type SpanLogOptions struct {
	// Retention, when positive, sets a TTL on servers that have it and
	// bounds the days rows are routed to (see dayOf). Dropping expired days
	// is the caller's, through DropBefore (storage.Retainer), which works on
	// every server: vigil's server runs one schedule for all its stores, so
	// the store has no loop of its own. Several processes on one
	// ClickHouse may all drop: dropping a gone partition is harmless.
	Retention time.Duration
	// MaxFutureSkew is how far ahead of now the timestamps written may lie
	// (limits.max_future_skew). Rows dated more than a day ahead are
	// stored in the day partition after the one they were written on (see
	// dayOf), so a search's lower date bound is widened by this much when
	// it exceeds a day; zero means at most a day, where nothing is moved.
	MaxFutureSkew time.Duration
	// Now is the clock for retention and partition routing (time.Now if
	// nil); tests set it.
	Now func() time.Time
}

// SpanLogStore keeps spans and logs in ClickHouse. It implements
// storage.SpanLogStore and storage.Retainer, and is safe for concurrent
// use; any number of stores, in any number of processes, may share the
// tables.
//
// Each WriteTraces or WriteLogs call is one INSERT block per table,
// returning nil only once ClickHouse acknowledged it (in a cluster, once
// every shard did: inserts are synchronous). A write that failed may still
// have been stored, so a retry can store spans or logs twice. Trace reads
// and summaries keep one copy of each span (package traceassembly); log
// reads return both copies.
type SpanLogStore struct {
	c    *Client
	opts SpanLogOptions

	// mu orders calls against Close: every call holds it shared.
	mu     sync.RWMutex
	closed bool
}

var (
	_ storage.SpanLogStore = (*SpanLogStore)(nil)
	_ storage.Retainer     = (*SpanLogStore)(nil)
)

// OpenSpanLogs creates the span and log tables if they are missing (on
// every shard, plus the Distributed tables, in a cluster) and returns the
// store. Opening again on an existing database changes nothing. The store
// does not own c: closing it leaves c open.
func OpenSpanLogs(ctx context.Context, c *Client, opts SpanLogOptions) (*SpanLogStore, error) {
	if c == nil {
		return nil, errors.New("clickhouse: OpenSpanLogs needs a client")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	for _, t := range spanLogTables {
		if err := c.ExecEverywhere(ctx, t.localDDL(c, opts.Retention)); err != nil {
			return nil, classify(ctx, "create "+t.name, err)
		}
		if c.Cluster != "" {
			if err := c.ExecEverywhere(ctx, t.distributedDDL(c)); err != nil {
				return nil, classify(ctx, "create distributed "+t.name, err)
			}
		}
	}
	return &SpanLogStore{c: c, opts: opts}, nil
}

// Close ends the store: later calls of any method return
// storage.ErrClosed; closing twice is harmless. The client stays open.
func (s *SpanLogStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// begin takes the shared lock for one call; the caller defers s.mu.RUnlock
// when it returns nil.
func (s *SpanLogStore) begin() error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return storage.ErrClosed
	}
	return nil
}

// DropBefore drops, on every shard, the day partitions of every table
// whose whole day lies before t, and reports how many days it dropped.
// Rows are routed to days by their (clamped) timestamps, see dayOf.
func (s *SpanLogStore) DropBefore(ctx context.Context, t time.Time) (int, error) {
	if err := s.begin(); err != nil {
		return 0, err
	}
	defer s.mu.RUnlock()
	cut := floorDiv(t.UnixNano(), dayNanos) // first day kept
	tables := make([]string, len(spanLogTables))
	for i, tb := range spanLogTables {
		tables[i] = tb.name
	}
	n, err := dropDaysBefore(ctx, s.c, tables, cut)
	if err != nil {
		return n, classify(ctx, "drop partitions", err)
	}
	return n, nil
}

// dropDaysBefore drops, on every shard, the day partitions of tables
// before day cut (days since the epoch), and reports how many days went.
func dropDaysBefore(ctx context.Context, c *Client, tables []string, cut int64) (int, error) {
	dropped := map[int64]bool{}
	err := c.eachShard(ctx, func(conn driver.Conn) error {
		for _, table := range tables {
			rows, err := conn.Query(ctx, "SELECT DISTINCT partition_id FROM system.parts WHERE active AND database = ? AND table = ?",
				c.Database, localName(c, table))
			if err != nil {
				return err
			}
			var days []int64
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					rows.Close()
					return err
				}
				d, err := time.Parse("20060102", id)
				if err != nil {
					continue // not one of ours
				}
				if day := d.Unix() / 86400; day < cut {
					days = append(days, day)
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			slices.Sort(days)
			for _, day := range days {
				date := time.Unix(day*86400, 0).UTC().Format("2006-01-02")
				if err := conn.Exec(ctx, "ALTER TABLE "+c.LocalTable(table)+" DROP PARTITION '"+date+"'"); err != nil {
					return err
				}
				dropped[day] = true
			}
		}
		return nil
	})
	return len(dropped), err
}

// localName is the unqualified name of the table holding the rows.
func localName(c *Client, name string) string {
	if c.Cluster == "" {
		return name
	}
	return name + "_local"
}

// dayOf routes a timestamp (ns) to a day partition. Days are clamped to
// the window retention can hold, [now-Retention, now+1 day] (routingWindow
// without a Retention), so that
// garbage timestamps (zero, far future) cannot create a partition per
// distinct day: ClickHouse refuses blocks touching more than 100.
func (s *SpanLogStore) dayOf(ns int64, lo, hi int64) int64 {
	return min(max(floorDiv(ns, dayNanos), lo), hi)
}

func (s *SpanLogStore) dayWindow() (lo, hi int64) {
	now := s.opts.Now()
	back := s.opts.Retention
	if back <= 0 {
		back = routingWindow
	}
	return floorDiv(now.Add(-back).UnixNano(), dayNanos), floorDiv(now.UnixNano(), dayNanos) + 1
}

// dateCond restricts a query on [start, end) ns to the day partitions that
// can hold it. A bound is only used inside the current retention window,
// where dayOf did not clamp: a row clamped into an edge day is found by
// unbounded searches and by GetTrace, not by a range outside the window.
func (s *SpanLogStore) dateCond(start, end int64) string {
	lo, _ := s.dayWindow()
	var out string
	if start != minNanos {
		if d := s.firstDate(start); d > lo {
			out += " AND date >= " + dateLiteral(d)
		}
	}
	if end != maxNanos {
		if d := floorDiv(end, dayNanos); d >= lo {
			out += " AND date <= " + dateLiteral(d)
		}
	}
	return out
}

// firstDate is the earliest day partition that can hold a row dated at or
// after start (ns). A row is stored in its own day unless it was dated
// beyond the day after the one it was written on (dayOf clamps it there);
// with writes at most MaxFutureSkew ahead of their writing, such a row
// lies in a day after the one of start-MaxFutureSkew.
func (s *SpanLogStore) firstDate(start int64) int64 {
	skew := int64(s.opts.MaxFutureSkew)
	if skew <= dayNanos {
		return floorDiv(start, dayNanos)
	}
	if start < minNanos+skew {
		return floorDiv(minNanos, dayNanos)
	}
	return floorDiv(start-skew, dayNanos) + 1
}

// dateLiteral is day number d as a Date literal.
func dateLiteral(d int64) string {
	return "toDate('" + time.Unix(d*86400, 0).UTC().Format("2006-01-02") + "')"
}

const (
	minNanos = -1 << 63
	maxNanos = 1<<63 - 1
)

// nanosRange converts a [start, end) query range, zero meaning unbounded.
func nanosRange(start, end time.Time) (int64, int64) {
	lo, hi := int64(minNanos), int64(maxNanos)
	if !start.IsZero() {
		lo = start.UnixNano()
	}
	if !end.IsZero() {
		hi = end.UnixNano()
	}
	return lo, hi
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// permanentCodes are ClickHouse errors a retry cannot fix: the statement or
// the schema is wrong. Everything else (network errors, timeouts, too many
// parts, memory limits, a shard down) is worth retrying.
var permanentCodes = map[int32]bool{
	6:  true, // CANNOT_PARSE_TEXT
	16: true, // NO_SUCH_COLUMN_IN_TABLE
	27: true, // CANNOT_PARSE_INPUT_ASSERTION_FAILED
	43: true, // ILLEGAL_TYPE_OF_ARGUMENT
	46: true, // UNKNOWN_FUNCTION
	47: true, // UNKNOWN_IDENTIFIER
	53: true, // TYPE_MISMATCH
	60: true, // UNKNOWN_TABLE
	62: true, // SYNTAX_ERROR
	70: true, // CANNOT_CONVERT_TYPE
	81: true, // UNKNOWN_DATABASE
}

// classify wraps err from ClickHouse. Outages wrap storage.ErrUnavailable
// so that receivers answer 503 and clients retry: the network failing, the
// pool exhausted, a server exception other than a broken statement (too
// many parts, memory limit, a shard down). Anything else (a statement or
// a value the driver rejects) is a bug a retry cannot fix.
func classify(ctx context.Context, op string, err error) error {
	if transient(ctx, err) {
		return fmt.Errorf("clickhouse: %s: %w: %w", op, storage.ErrUnavailable, err)
	}
	return fmt.Errorf("clickhouse: %s: %w", op, err)
}

func transient(ctx context.Context, err error) bool {
	var ex *clickhouse.Exception
	var ne net.Error
	switch {
	case errors.As(err, &ex):
		return !permanentCodes[ex.Code]
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// The caller gave up, or a driver timeout fired while it had not.
		return ctx.Err() == nil
	case errors.As(err, &ne), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, clickhouse.ErrAcquireConnTimeout), errors.Is(err, sqldriver.ErrBadConn):
		return true
	}
	return false
}
