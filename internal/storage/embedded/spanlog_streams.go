package embedded

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

// logStreamsDDL creates a day's table of log streams: the resource and
// scope values that every record of a stream shares, once per file
// instead of in seven string columns a record. DuckDB updates each string
// column's statistics (HyperLogLog, min/max) at every append, writes it
// to the WAL and analyses its compression at checkpoints, whatever it
// holds; a record now carries a stream number instead.
//
// ids are unique but values need not be: two writers that meet the same
// new stream at once each insert it under an id of their own (see
// logStreams.assign), so reads join on id and group by values.
const logStreamsDDL = `CREATE TABLE IF NOT EXISTS %s.log_streams (
	id                  UINTEGER  NOT NULL,
	service             VARCHAR   NOT NULL,
	resource_attributes VARCHAR   NOT NULL,
	resource_dropped    UINTEGER  NOT NULL,
	resource_schema_url VARCHAR   NOT NULL,
	scope_name          VARCHAR   NOT NULL,
	scope_version       VARCHAR   NOT NULL,
	scope_attributes    VARCHAR   NOT NULL,
	scope_dropped       UINTEGER  NOT NULL,
	scope_schema_url    VARCHAR   NOT NULL
)`

// logStreamKey is a stream's values, as log_streams holds them.
type logStreamKey struct {
	res   encodedResource
	scope encodedScope
}

// logStreams numbers a day file's streams. It is loaded from log_streams
// when the file is attached and learns a new stream once the transaction
// that inserted it has committed.
type logStreams struct {
	mu  sync.Mutex
	ids map[logStreamKey]uint32
	// next is the id the next new stream gets. It only grows: ids taken
	// by a transaction that then failed are never given again, so a
	// retried batch cannot collide with rows another writer committed
	// under the same id meanwhile.
	next uint32
}

// newLogStream is a stream first seen by a batch, to insert with its
// records.
type newLogStream struct {
	id  uint32
	key logStreamKey
}

// streamPair identifies a batch's resource and scope by their pointers,
// which logRows shares among the records of one ResourceLogs/ScopeLogs.
type streamPair struct {
	res   *encodedResource
	scope *encodedScope
}

// assign gives each resource and scope pair of day its stream id, taking
// new ids for the streams the file does not know yet. The new streams
// must be inserted in the records' transaction and passed to learn after
// it commits; until then another writer meeting the same stream takes an
// id of its own, which costs one duplicate row in log_streams and nothing
// else.
func (ls *logStreams) assign(day []logRow) (map[streamPair]uint32, []newLogStream) {
	ids := map[streamPair]uint32{}
	var fresh []newLogStream
	var byKey map[logStreamKey]uint32 // the batch's new streams by value
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for k := range day {
		pair := streamPair{day[k].res, day[k].scope}
		if _, ok := ids[pair]; ok {
			continue
		}
		key := logStreamKey{*pair.res, *pair.scope}
		id, ok := ls.ids[key]
		if !ok {
			if id, ok = byKey[key]; !ok {
				if byKey == nil {
					byKey = map[logStreamKey]uint32{}
				}
				id = ls.next
				ls.next++
				byKey[key] = id
				fresh = append(fresh, newLogStream{id, key})
			}
		}
		ids[pair] = id
	}
	return ids, fresh
}

// learn records streams whose transaction committed. A stream another
// writer committed first keeps that writer's id.
func (ls *logStreams) learn(fresh []newLogStream) {
	if len(fresh) == 0 {
		return
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for _, f := range fresh {
		if _, ok := ls.ids[f.key]; !ok {
			ls.ids[f.key] = f.id
		}
	}
}

// appendLogStreams inserts the batch's new streams. Through the plain
// appender, as there are few: a NUL byte in a value ends it there, as it
// does for the other columns the plain appender writes.
func appendLogStreams(a *duckdb.Appender, fresh []newLogStream) error {
	for _, f := range fresh {
		r, sc := &f.key.res, &f.key.scope
		if err := a.AppendRow(f.id, r.service, r.attrs, r.dropped, r.schemaURL,
			sc.name, sc.version, sc.attrs, sc.dropped, sc.schemaURL); err != nil {
			return err
		}
	}
	return nil
}

// loadLogStreams reads the streams of a day file in the streams layout.
func (s *SpanLogStore) loadLogStreams(ctx context.Context, p *partition) error {
	ls := &logStreams{ids: map[logStreamKey]uint32{}}
	rows, err := s.db.QueryContext(ctx, `SELECT id, service, resource_attributes, resource_dropped, resource_schema_url,
		scope_name, scope_version, scope_attributes, scope_dropped, scope_schema_url FROM `+p.alias+`.log_streams`)
	if err != nil {
		return fmt.Errorf("embedded: read log streams of %s: %w", p.path, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id uint32
			k  logStreamKey
		)
		if err := rows.Scan(&id, &k.res.service, &k.res.attrs, &k.res.dropped, &k.res.schemaURL,
			&k.scope.name, &k.scope.version, &k.scope.attrs, &k.scope.dropped, &k.scope.schemaURL); err != nil {
			return fmt.Errorf("embedded: read log streams of %s: %w", p.path, err)
		}
		if old, ok := ls.ids[k]; !ok || id < old {
			ls.ids[k] = id
		}
		ls.next = max(ls.next, id+1)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("embedded: read log streams of %s: %w", p.path, err)
	}
	p.streams = ls
	return nil
}

// logsFrom is the FROM item reads take a day file's records from, with
// the columns of the layout before streams: the table itself in that
// layout, else the records joined with their streams. rowid is the
// records' own, which log cursors hold. Given the query's SQL, the join
// is left out when none of it names a stream column, as it costs a probe
// a record.
func (p *partition) logsFrom(query ...string) string {
	if p.streams == nil || len(query) > 0 && !slices.ContainsFunc(query, namesStreamColumn) {
		return p.alias + ".logs"
	}
	return "(SELECT l.*, l.rowid AS rowid, s.* EXCLUDE (id) FROM " + p.alias + ".logs AS l JOIN " +
		p.alias + ".log_streams AS s ON l.stream = s.id) AS logs"
}

// prepareLogTables finds the layout of the day file's log table, creating
// the tables of a new file, and loads its streams. log_streams is created
// before logs, so a file with a log table and none of log_streams is in
// the layout before it, even if it was cut short while being created.
func (s *SpanLogStore) prepareLogTables(ctx context.Context, p *partition) error {
	var logs, streams int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE table_name = 'logs'), count(*) FILTER (WHERE table_name = 'log_streams')
		FROM duckdb_tables() WHERE database_name = ? AND schema_name = 'main'`, p.alias).Scan(&logs, &streams); err != nil {
		return fmt.Errorf("embedded: list tables of %s: %w", p.path, err)
	}
	inline := logs > 0 && streams == 0 || logs == 0 && streams == 0 && s.opts.InlineLogStreams
	stmts := []string{fmt.Sprintf(logStreamsDDL, p.alias), fmt.Sprintf(logsDDL, p.alias)}
	if inline {
		stmts = []string{fmt.Sprintf(inlineLogsDDL, p.alias)}
	}
	for _, q := range stmts {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("embedded: create tables in %s: %w", p.path, err)
		}
	}
	if inline {
		return nil
	}
	return s.loadLogStreams(ctx, p)
}

// namesStreamColumn reports whether SQL text may name a column of
// log_streams (a false positive only costs the join).
func namesStreamColumn(q string) bool {
	return strings.Contains(q, "service") || strings.Contains(q, "resource_") || strings.Contains(q, "scope_")
}

// logStreamIDs lists, as SQL, the ids of the day file's streams that cond
// (over log_streams' columns) selects; "" when none.
func (s *SpanLogStore) logStreamIDs(ctx context.Context, p partition, cond string, args []any) (string, error) {
	var ids string
	if err := s.db.QueryRowContext(ctx, "SELECT coalesce(string_agg(id::VARCHAR, ','), '') FROM "+p.alias+".log_streams WHERE "+cond, args...).Scan(&ids); err != nil {
		return "", fmt.Errorf("embedded: find log streams in %s: %w", p.path, err)
	}
	return ids, nil
}
