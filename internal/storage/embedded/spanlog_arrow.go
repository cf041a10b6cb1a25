//go:build duckdb_arrow

package embedded

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	duckdb "github.com/duckdb/duckdb-go/v2"
)

// arrowAlloc allocates the Arrow batches; tests swap in a checked
// allocator to see every buffer released.
var arrowAlloc memory.Allocator = memory.DefaultAllocator

// stagedInserts holds the Arrow batches of a transaction's query
// inserts, each registered as a view its INSERT scans in one go: the
// appender instead copies every string value into C memory with three
// cgo calls, which dominated the write path's CPU.
//
// The views are registered before the transaction begins and dropped
// after it ends because a view is a write to the connection's temporary
// catalog, and DuckDB lets a transaction write to one database only.
// Views registered through Arrow are temporary, so each connection has
// its own and the names need only differ within a transaction.
type stagedInserts struct {
	fills    []tableFill
	views    []string // by fill; empty for fills without an insert
	releases []func()
}

func stageInserts(ctx context.Context, conn *sql.Conn, fills []tableFill) (st *stagedInserts, err error) {
	st = &stagedInserts{fills: fills, views: make([]string, len(fills))}
	defer func() {
		if err != nil {
			st.release(ctx, conn)
		}
	}()
	for i, f := range fills {
		if f.insert == nil {
			continue
		}
		rec, err := f.insert.batch(f.fill)
		if err != nil {
			return st, err
		}
		name := "vigil_arrow_rows_" + strconv.Itoa(i)
		err = conn.Raw(func(dc any) error {
			ar, err := duckdb.NewArrowFromConn(dc.(driver.Conn))
			if err != nil {
				return err
			}
			reader, err := array.NewRecordReader(rec.Schema(), []arrow.RecordBatch{rec})
			if err != nil {
				return err
			}
			// The reader holds its own reference to rec, and the stream
			// DuckDB scans one to the reader.
			defer reader.Release()
			release, err := ar.RegisterView(reader, name)
			if err != nil {
				return fmt.Errorf("register arrow view: %w", err)
			}
			st.views[i] = name
			st.releases = append(st.releases, release)
			return nil
		})
		rec.Release()
		if err != nil {
			return st, err
		}
	}
	return st, nil
}

// run inserts fill i's rows from its view.
func (s *stagedInserts) run(ctx context.Context, c driver.Conn, catalog string, i int) error {
	exec, ok := c.(driver.ExecerContext)
	if !ok {
		return errors.New("connection cannot execute statements")
	}
	_, err := exec.ExecContext(ctx, s.fills[i].insert.sql(catalog, s.views[i]), nil)
	return err
}

// release drops the views and frees their batches, so DuckDB keeps no
// reference to Go memory once the write returns. A connection whose views
// could not be dropped is discarded, which drops them.
func (s *stagedInserts) release(ctx context.Context, conn *sql.Conn) {
	for _, v := range s.views {
		if v == "" {
			continue
		}
		if _, err := conn.ExecContext(context.WithoutCancel(ctx), "DROP VIEW IF EXISTS "+v); err != nil {
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
			break
		}
	}
	for _, r := range s.releases {
		r()
	}
	s.releases = nil
}

// batch builds the rows fill gives as one Arrow record batch.
func (q *queryInsert) batch(fill func(rowAppender) error) (arrow.RecordBatch, error) {
	rows, err := newArrowRows(q.types, q.columns, q.rows)
	if err != nil {
		return nil, err
	}
	defer rows.b.Release()
	if err := fill(rows); err != nil {
		return nil, err
	}
	return rows.b.NewRecordBatch(), nil
}

// arrowRows collects rows into Arrow builders, one a column.
type arrowRows struct {
	b       *array.RecordBuilder
	cols    []array.Builder
	columns []string
}

func newArrowRows(types []duckdb.Type, columns []string, n int) (*arrowRows, error) {
	fields := make([]arrow.Field, len(types))
	for i, t := range types {
		at, err := arrowType(t)
		if err != nil {
			return nil, fmt.Errorf("embedded: column %s: %w", columns[i], err)
		}
		fields[i] = arrow.Field{Name: columns[i], Type: at, Nullable: true}
	}
	b := array.NewRecordBuilder(arrowAlloc, arrow.NewSchema(fields, nil))
	// Sized once: growing the buffers copies them and leaves garbage.
	b.Reserve(n)
	for _, c := range b.Fields() {
		if s, ok := c.(*array.StringBuilder); ok {
			s.ReserveData(n * 64)
		}
	}
	return &arrowRows{b: b, cols: b.Fields(), columns: columns}, nil
}

func arrowType(t duckdb.Type) (arrow.DataType, error) {
	switch t {
	case duckdb.TYPE_BOOLEAN:
		return arrow.FixedWidthTypes.Boolean, nil
	case duckdb.TYPE_UTINYINT:
		return arrow.PrimitiveTypes.Uint8, nil
	case duckdb.TYPE_USMALLINT:
		return arrow.PrimitiveTypes.Uint16, nil
	case duckdb.TYPE_UINTEGER:
		return arrow.PrimitiveTypes.Uint32, nil
	case duckdb.TYPE_UBIGINT:
		return arrow.PrimitiveTypes.Uint64, nil
	case duckdb.TYPE_BIGINT:
		return arrow.PrimitiveTypes.Int64, nil
	case duckdb.TYPE_VARCHAR:
		return arrow.BinaryTypes.String, nil
	}
	return nil, fmt.Errorf("no arrow type for duckdb type %d", t)
}

// AppendRow takes the values the appender would, each of its column's Go
// type or nil.
func (r *arrowRows) AppendRow(args ...driver.Value) error {
	if len(args) != len(r.cols) {
		return fmt.Errorf("embedded: %d values for %d columns", len(args), len(r.cols))
	}
	for i, v := range args {
		if v == nil {
			r.cols[i].AppendNull()
			continue
		}
		ok := false
		switch b := r.cols[i].(type) {
		case *array.BooleanBuilder:
			var x bool
			if x, ok = v.(bool); ok {
				b.Append(x)
			}
		case *array.Uint8Builder:
			var x uint8
			if x, ok = v.(uint8); ok {
				b.Append(x)
			}
		case *array.Uint16Builder:
			var x uint16
			if x, ok = v.(uint16); ok {
				b.Append(x)
			}
		case *array.Uint32Builder:
			var x uint32
			if x, ok = v.(uint32); ok {
				b.Append(x)
			}
		case *array.Uint64Builder:
			var x uint64
			if x, ok = v.(uint64); ok {
				b.Append(x)
			}
		case *array.Int64Builder:
			var x int64
			if x, ok = v.(int64); ok {
				b.Append(x)
			}
		case *array.StringBuilder:
			var x string
			if x, ok = v.(string); ok {
				b.Append(x)
			}
		}
		if !ok {
			return fmt.Errorf("embedded: column %s: unexpected %T", r.columns[i], v)
		}
	}
	return nil
}
