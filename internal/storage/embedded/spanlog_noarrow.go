//go:build !duckdb_arrow

package embedded

import (
	"context"
	"database/sql"
	"database/sql/driver"
)

// stagedInserts holds the fills whose rows go through a query appender;
// builds with the duckdb_arrow tag stage them as Arrow batches instead
// (spanlog_arrow.go).
type stagedInserts struct {
	fills []tableFill
}

func stageInserts(_ context.Context, _ *sql.Conn, fills []tableFill) (*stagedInserts, error) {
	return &stagedInserts{fills: fills}, nil
}

// run inserts fill i's rows through its query appender.
func (s *stagedInserts) run(_ context.Context, c driver.Conn, catalog string, i int) error {
	f := s.fills[i]
	return f.insert.appendQuery(c, catalog, f.fill)
}

func (s *stagedInserts) release(context.Context, *sql.Conn) {}
