package embedded

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync/atomic"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/vigil-observability/vigil/internal/storage"
)

// logCountsDDL creates a day's log count summary: how many records, and
// how many body bytes, each stream (service and resource, as in the logs
// table) has per second and severity band, maintained as records are
// written, in the same transaction. Counts of a whole range of seconds
// are then read from a few rows per stream and second instead of from
// every record: LogStreams and CountLogs read it for the seconds their
// range covers whole and the records themselves only for the seconds
// cut at its edges. Second sec holds the records stamped in
// ((sec-1) s, sec s], closed at its end as a Loki count's bins are. The
// band is storage.Severity of a severity number 1-24, else 0, and then
// severity_text is the record's, as CountLogs groups them. Rows are
// added per written batch, never merged: a key has a row per batch that
// held it. The summary lives and dies with its day file, so retention
// removes a day's counts with its records.
const logCountsDDL = `CREATE TABLE IF NOT EXISTS %s.log_counts (
	service             VARCHAR   NOT NULL,
	resource_attributes VARCHAR   NOT NULL,
	sec                 BIGINT    NOT NULL,
	band                UTINYINT  NOT NULL,
	severity_text       VARCHAR   NOT NULL,
	n                   BIGINT    NOT NULL,
	bytes               BIGINT    NOT NULL
)`

// countSecond is the summary's second length in ns.
const countSecond = int64(1e9)

// Summary columns as SQL over the logs table, for filling the summary of
// a file written before it existed.
const (
	logSecSQL      = "ts_ns // 1000000000 - CASE WHEN ts_ns % 1000000000 < 0 THEN 1 ELSE 0 END + CASE WHEN ts_ns % 1000000000 <> 0 THEN 1 ELSE 0 END"
	logBandSQL     = "CASE WHEN severity_number BETWEEN 1 AND 24 THEN (severity_number::INTEGER + 3) // 4 ELSE 0 END::UTINYINT"
	logSevTextSQL  = "CASE WHEN severity_number BETWEEN 1 AND 24 THEN '' ELSE severity_text END"
	logCountsTable = "log_counts"
)

// prepareLogCounts creates the day's count summary, filled from its
// records when the file was written before the summary existed: in one
// transaction, so that a crash leaves either no table (and the next start
// fills it) or a whole one.
func (s *SpanLogStore) prepareLogCounts(ctx context.Context, p *partition) error {
	var had int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM duckdb_tables()
		WHERE database_name = ? AND table_name = ?`, p.alias, logCountsTable).Scan(&had); err != nil {
		return fmt.Errorf("embedded: list tables of %s: %w", p.path, err)
	}
	if had > 0 {
		return nil
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("embedded: get connection: %w", err)
	}
	defer conn.Close()
	for _, q := range []string{"BEGIN TRANSACTION", fmt.Sprintf(logCountsDDL, p.alias), "INSERT INTO " + p.alias + ".log_counts SELECT service, resource_attributes, " + logSecSQL + ", " + logBandSQL + ", " + logSevTextSQL +
		", count(*), sum(strlen(body))::BIGINT FROM " + p.logsFrom() + " GROUP BY ALL", "COMMIT"} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
			return fmt.Errorf("embedded: fill the log counts of %s: %w", p.path, err)
		}
	}
	return nil
}

// compactLogCountsAfter is how many records a day file takes between two
// compactions of its count summary. A batch adds a row per stream, second
// and band it holds, so between compactions the summary grows by a few
// rows per batch; compacting merges them into one row per key. A variable
// for tests.
var compactLogCountsAfter int64 = 1 << 18

// logCountState is a day file's count summary's bookkeeping.
type logCountState struct {
	// records counts the records written since the last compaction.
	records atomic.Int64
	// busy is held by the write compacting the summary.
	busy atomic.Bool
	// done is the last row id when the last compaction committed (-1
	// before the first): later ones read only the rows after it, so that
	// a compaction costs what was written since, not the whole day. Keys
	// that straddle two compactions keep a row from each, and rows a
	// writer committed just before done was read stay as written; row
	// ids of a table with deletions may be renumbered by a checkpoint,
	// and then a compaction reads some rows again or leaves some. Every
	// count stays exact either way. Guarded by busy.
	done int64
}

// maybeCompactLogCounts compacts p's count summary once enough records
// have been written since the last time: each batch adds its own rows, so
// that a summary read by queries would otherwise hold about one row per
// 100 records. One transaction replaces the rows that exist when it starts
// by their sums per key; rows that writers commit meanwhile stay as they
// are. The caller holds s.mu shared.
func (s *SpanLogStore) maybeCompactLogCounts(ctx context.Context, p *partition, written int) error {
	st := p.counts
	if st.records.Add(int64(written)) < compactLogCountsAfter || !st.busy.CompareAndSwap(false, true) {
		return nil
	}
	defer st.busy.Store(false)
	st.records.Store(0)
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
		return err
	}
	// Rows inserted by this transaction have row ids above every
	// committed row's until it commits, so the DELETE spares them.
	var last sql.NullInt64
	err = conn.QueryRowContext(ctx, "SELECT max(rowid) FROM "+p.alias+".log_counts").Scan(&last)
	if err == nil && last.Valid {
		t, rows := p.alias+".log_counts", fmt.Sprintf("rowid > %d AND rowid <= %d", st.done, last.Int64)
		_, err = conn.ExecContext(ctx, "INSERT INTO "+t+" SELECT service, resource_attributes, sec, band, severity_text, sum(n)::BIGINT, sum(bytes)::BIGINT FROM "+t+" WHERE "+rows+" GROUP BY ALL ORDER BY sec")
		if err == nil {
			_, err = conn.ExecContext(ctx, "DELETE FROM "+t+" WHERE "+rows)
		}
	}
	if err == nil {
		_, err = conn.ExecContext(context.WithoutCancel(ctx), "COMMIT")
		if err == nil {
			// Past the rows just inserted, which are compacted.
			if err := conn.QueryRowContext(ctx, "SELECT max(rowid) FROM "+p.alias+".log_counts").Scan(&last); err == nil && last.Valid {
				st.done = last.Int64
			}
			return nil
		}
	}
	if _, rerr := conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK"); rerr != nil {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	}
	return err
}

// logCountKey is one row of the summary a batch adds.
type logCountKey struct {
	res     *encodedResource
	sec     int64
	band    uint8
	sevText string
}

// logSecond is the summary's second of a record's time: the ceiling of
// ts in seconds.
func logSecond(ts int64) int64 {
	sec := floorDiv(ts, countSecond)
	if ts%countSecond != 0 {
		sec++
	}
	return sec
}

// appendLogCounts appends the summary rows of one day's records, body
// giving each record's body as stored.
func appendLogCounts(a *duckdb.Appender, day []logRow, body func(*logRow) string) error {
	type count struct{ n, bytes int64 }
	counts := make(map[logCountKey]count, 8)
	for k := range day {
		r := &day[k]
		key := logCountKey{res: r.res, sec: logSecond(r.ts)}
		if r.severity >= 1 && r.severity <= 24 {
			key.band = (r.severity + 3) / 4
		} else {
			key.sevText = r.severityText
		}
		c := counts[key]
		c.n++
		c.bytes += int64(len(body(r)))
		counts[key] = c
	}
	keys := make([]logCountKey, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	// Time order, as the records, for the zonemaps on sec.
	slices.SortFunc(keys, func(a, b logCountKey) int { return cmp.Compare(a.sec, b.sec) })
	for _, k := range keys {
		c := counts[k]
		if err := a.AppendRow(k.res.service, k.res.attrs, k.sec, k.band, k.sevText, c.n, c.bytes); err != nil {
			return err
		}
	}
	return nil
}

// countSplit divides the records stamped in (a, b] into the whole seconds
// the summary answers for, secLo to secHi, and the edges read from the
// records, (a, edgeLo] and (edgeHi, b]. open says a is no bound at all.
// whole is false when no second lies whole in the range, or the range is
// too near the ends of int64 to split without overflow: then all of
// (a, b] is read from the records.
type countSplit struct {
	whole          bool
	secLo, secHi   int64
	edgeLo, edgeHi int64
}

func splitCountRange(a, b int64, open bool) countSplit {
	if b < math.MinInt64+2*countSecond || !open && a > math.MaxInt64-2*countSecond {
		return countSplit{}
	}
	var sp countSplit
	if open {
		sp.secLo, sp.edgeLo = math.MinInt64, a
	} else {
		// The first second that starts at or after a.
		c := floorDiv(a, countSecond)
		if a%countSecond != 0 {
			c++
		}
		sp.secLo, sp.edgeLo = c+1, c*countSecond
	}
	sp.secHi = floorDiv(b, countSecond)
	sp.edgeHi = sp.secHi * countSecond
	sp.whole = sp.secLo <= sp.secHi
	return sp
}

// logCountsConditions selects the summary rows of q's service and streams
// in the whole seconds of sp.
func logCountsConditions(q storage.LogQuery, sp countSplit) (string, []any, error) {
	conds := []string{fmt.Sprintf("sec <= %d", sp.secHi)}
	if sp.secLo != math.MinInt64 {
		conds = append(conds, fmt.Sprintf("sec >= %d", sp.secLo))
	}
	var args []any
	if len(q.Streams) > 0 {
		in, err := streamKeyList(q.Streams)
		if err != nil {
			return "", nil, err
		}
		conds = append(conds, streamKeyExpr+" IN ("+in+")")
	}
	if q.Service != "" {
		conds = append(conds, "service = ?")
		args = append(args, q.Service)
	}
	return strings.Join(conds, " AND "), args, nil
}
