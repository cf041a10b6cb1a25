package embedded

import (
	"context"
	"database/sql"
	"fmt"
	"sync"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/vigil-observability/vigil/internal/storage/traceassembly"
)

// traceIndexDDL creates a day's trace index: one row per trace per written
// batch, with the range of its span start times in that batch. It is a
// fraction of the spans table's size, so finding which days and which time
// range hold a trace scans little; the spans themselves are then read with
// a start_ns range that DuckDB's zonemaps prune to a few row groups, since
// spans are appended roughly in time order.
//
// spans and bytes count the batch's spans of the trace and their size as
// traceSizeSQL measures it, so that a trace read can tell from the index
// alone that the trace fits its bounds and skip sizing it. Files written
// before these columns existed hold NULL there: unknown.
const traceIndexDDL = `CREATE TABLE IF NOT EXISTS %s.trace_index (
	trace_hi  UBIGINT NOT NULL,
	trace_lo  UBIGINT NOT NULL,
	start_min BIGINT  NOT NULL,
	start_max BIGINT  NOT NULL,
	spans     UINTEGER,
	bytes     UBIGINT
)`

// traceSizeSQL is a span row's size as traceassembly.Row.Size counts it,
// which the trace read limit's byte bound applies to.
var traceSizeSQL = fmt.Sprintf("strlen(attributes) + strlen(events) + strlen(links) + strlen(resource_attributes) + strlen(name) + %d", traceassembly.RowOverhead)

// operationsDDL creates a day's list of (service, span name, kind) seen, so
// listing services and operations reads a few hundred rows, not the spans.
// A combination is written once per process and day, so the table holds
// few duplicates; readers use DISTINCT.
const operationsDDL = `CREATE TABLE IF NOT EXISTS %s.operations (
	service VARCHAR  NOT NULL,
	name    VARCHAR  NOT NULL,
	kind    UTINYINT NOT NULL
)`

// maxOperationsPerDay bounds a day's operation list. Instrumentation that
// puts ids into span names would otherwise grow it (and memory) without
// limit; spans beyond it are stored and searchable, only not listed.
const maxOperationsPerDay = 50000

type opKey struct {
	service, name string
	kind          uint8
}

// opSet is a day's known operations, shared by every copy of its partition.
type opSet struct {
	mu   sync.Mutex
	m    map[opKey]struct{}
	full bool
}

// newOperations returns the batch's operations the day does not list yet.
func (p *partition) newOperations(rows []spanRow) []opKey {
	p.ops.mu.Lock()
	defer p.ops.mu.Unlock()
	var out []opKey
	for i := range rows {
		k := opKey{rows[i].res.service, rows[i].name, rows[i].kind}
		if _, ok := p.ops.m[k]; ok {
			continue
		}
		if len(p.ops.m)+len(out) >= maxOperationsPerDay {
			p.ops.full = true
			break
		}
		if !containsOp(out, k) {
			out = append(out, k)
		}
	}
	return out
}

func containsOp(ops []opKey, k opKey) bool {
	for _, o := range ops {
		if o == k {
			return true
		}
	}
	return false
}

// addOperations records operations once their rows are committed.
func (p *partition) addOperations(ops []opKey) {
	if len(ops) == 0 {
		return
	}
	p.ops.mu.Lock()
	defer p.ops.mu.Unlock()
	for _, k := range ops {
		p.ops.m[k] = struct{}{}
	}
}

// operations copies the day's operation list.
func (p *partition) operations() []opKey {
	p.ops.mu.Lock()
	defer p.ops.mu.Unlock()
	out := make([]opKey, 0, len(p.ops.m))
	for k := range p.ops.m {
		out = append(out, k)
	}
	return out
}

func appendOperations(a *duckdb.Appender, ops []opKey) error {
	for _, k := range ops {
		if err := a.AppendRow(k.service, k.name, k.kind); err != nil {
			return err
		}
	}
	return nil
}

// traceIndexFill rebuilds a day's trace index from its spans, one row per
// trace.
func traceIndexFill(alias string) string {
	return "INSERT INTO " + alias + ".trace_index SELECT trace_hi, trace_lo, min(start_ns), max(start_ns), count(*), sum(" + traceSizeSQL +
		") FROM " + alias + ".spans GROUP BY trace_hi, trace_lo"
}

// appendTraceIndex writes one index row per trace of a day's rows, which
// are sorted by trace id and then start time.
func appendTraceIndex(a *duckdb.Appender, rows []spanRow) error {
	for i := 0; i < len(rows); {
		j := i + 1
		size := rows[i].size
		for j < len(rows) && rows[j].traceHi == rows[i].traceHi && rows[j].traceLo == rows[i].traceLo {
			size += rows[j].size
			j++
		}
		if err := a.AppendRow(rows[i].traceHi, rows[i].traceLo, rows[i].start, rows[j-1].start, uint32(j-i), uint64(size)); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// prepareIndexes creates the day's index tables, fills them from the spans
// when the file predates them, and loads its operation list.
func (s *SpanLogStore) prepareIndexes(ctx context.Context, p *partition) error {
	var had int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM duckdb_tables()
		WHERE database_name = ? AND table_name IN ('trace_index', 'operations')`, p.alias).Scan(&had); err != nil {
		return fmt.Errorf("embedded: list tables of %s: %w", p.path, err)
	}
	var counted int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM duckdb_columns()
		WHERE database_name = ? AND table_name = 'trace_index' AND column_name = 'bytes'`, p.alias).Scan(&counted); err != nil {
		return fmt.Errorf("embedded: list columns of %s: %w", p.path, err)
	}
	stmts := []string{fmt.Sprintf(traceIndexDDL, p.alias), fmt.Sprintf(operationsDDL, p.alias)}
	switch {
	case had < 2:
		// A file written before these tables existed (or a crash between
		// creating them): rebuild both from the spans, in one transaction.
		// Dropped first, since one that exists may have an older shape.
		stmts = append([]string{"BEGIN TRANSACTION",
			"DROP TABLE IF EXISTS " + p.alias + ".trace_index",
			"DROP TABLE IF EXISTS " + p.alias + ".operations"}, stmts...)
		stmts = append(stmts,
			traceIndexFill(p.alias),
			"INSERT INTO "+p.alias+".operations SELECT DISTINCT service, name, kind FROM "+p.alias+".spans",
			"COMMIT")
	case counted == 0:
		// A trace index written before it counted spans and bytes: it is
		// rebuilt with them, once, so that reads of the file's traces can
		// skip sizing them too.
		stmts = append(stmts,
			"BEGIN TRANSACTION",
			"ALTER TABLE "+p.alias+".trace_index ADD COLUMN spans UINTEGER",
			"ALTER TABLE "+p.alias+".trace_index ADD COLUMN bytes UBIGINT",
			"DELETE FROM "+p.alias+".trace_index",
			traceIndexFill(p.alias),
			"COMMIT")
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("embedded: get connection: %w", err)
	}
	defer conn.Close()
	for _, q := range stmts {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
			return fmt.Errorf("embedded: prepare indexes of %s: %w", p.path, err)
		}
	}
	rows, err := conn.QueryContext(ctx, "SELECT DISTINCT service, name, kind FROM "+p.alias+".operations")
	if err != nil {
		return fmt.Errorf("embedded: read operations of %s: %w", p.path, err)
	}
	defer rows.Close()
	p.ops = &opSet{m: map[opKey]struct{}{}}
	for rows.Next() {
		var k opKey
		var kind sql.Null[uint8]
		if err := rows.Scan(&k.service, &k.name, &kind); err != nil {
			return fmt.Errorf("embedded: read operations of %s: %w", p.path, err)
		}
		k.kind = kind.V
		p.ops.m[k] = struct{}{}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("embedded: read operations of %s: %w", p.path, err)
	}
	return nil
}
