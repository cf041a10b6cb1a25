// Command vigil-tracecold times trace reads straight from a span day file
// (a spanlog-YYYYMMDD.duckdb that vigil wrote), in a DuckDB instance of its
// own that has just attached it: the first pass over the ids is the first
// touch of each row group, as after a server start, the second is warm.
// Without the server's HTTP and start-up work in the way, it compares
// layouts (rewrite, with another row group size) and query shapes.
//
//	vigil-tracecold rewrite --from day.duckdb --to copy.duckdb --row-group-size 16384
//	vigil-tracecold read --file copy.duckdb --n 1000 --seed 1 [--mode rowid]
package main

import (
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

// spanColumns are the columns vigil's GetTrace reads.
const spanColumns = `span_id, parent_span_id, start_ns, duration_ns, service, name, kind,
	status_code, status_message, http_method, http_route, http_status_code, http_keys,
	trace_state, flags, attributes, dropped_attributes, events, dropped_events, links,
	dropped_links, resource_attributes, resource_dropped, resource_schema_url,
	scope_name, scope_version, scope_attributes, scope_dropped, scope_schema_url`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: vigil-tracecold rewrite|read [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "rewrite":
		err = rewrite(os.Args[2:])
	case "read":
		err = read(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "vigil-tracecold:", err)
		os.Exit(1)
	}
}

func open() (*sql.DB, error) {
	c, err := duckdb.NewConnector("?threads=2&memory_limit=1GB", nil)
	if err != nil {
		return nil, fmt.Errorf("open duckdb: %w", err)
	}
	db := sql.OpenDB(c)
	// One connection: ATTACH and USE hold for every statement.
	db.SetMaxOpenConns(1)
	return db, nil
}

// rewrite copies the spans and trace_index tables of a day file into a new
// file, in the same row order, with the table definitions of the source
// (their compression settings included) and the row group size asked for.
func rewrite(args []string) error {
	fs := flag.NewFlagSet("rewrite", flag.ExitOnError)
	from := fs.String("from", "", "day file to copy")
	to := fs.String("to", "", "new file")
	rg := fs.Int("row-group-size", 0, "rows per row group (0: DuckDB's default, 122880)")
	_ = fs.Parse(args)
	db, err := open()
	if err != nil {
		return err
	}
	defer db.Close()
	opts := "STORAGE_VERSION 'v1.4.0'"
	if *rg > 0 {
		opts += ", ROW_GROUP_SIZE " + strconv.Itoa(*rg)
	}
	stmts := []string{
		fmt.Sprintf("ATTACH '%s' AS src (READ_ONLY)", *from),
		fmt.Sprintf("ATTACH '%s' AS dst (%s)", *to, opts),
	}
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	t0 := time.Now()
	for _, table := range []string{"spans", "trace_index"} {
		var ddl string
		if err := db.QueryRow("SELECT sql FROM duckdb_tables() WHERE database_name = 'src' AND table_name = ?", table).Scan(&ddl); err != nil {
			return fmt.Errorf("definition of %s: %w", table, err)
		}
		for _, q := range []string{"USE dst", ddl, "INSERT INTO dst." + table + " SELECT * FROM src." + table} {
			if _, err := db.Exec(q); err != nil {
				return fmt.Errorf("copy %s: %w", table, err)
			}
		}
	}
	if _, err := db.Exec("CHECKPOINT dst"); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	fmt.Printf("rewritten in %v\n", time.Since(t0).Round(time.Millisecond))
	return layout(db, "dst", *to)
}

// layout prints what decides a cold read's block loads: how many row
// groups the spans form and how many distinct blocks a row group's
// columns lie in.
func layout(db *sql.DB, alias, path string) error {
	var spans, groups int64
	var blocks float64
	err := db.QueryRow(`SELECT (SELECT count(*) FROM `+alias+`.spans), count(*), avg(n)
		FROM (SELECT row_group_id, count(DISTINCT block_id) AS n FROM pragma_storage_info('`+alias+`.spans')
			WHERE segment_type <> 'VALIDITY' AND block_id >= 0 GROUP BY row_group_id)`).Scan(&spans, &groups, &blocks)
	if err != nil {
		return fmt.Errorf("layout: %w", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	fmt.Printf("%d spans, %d row groups, %.1f blocks a row group, %.1f bytes a span (whole file)\n",
		spans, groups, blocks, float64(st.Size())/float64(spans))
	return nil
}

type trace struct {
	hi, lo   uint64
	min, max int64
}

func read(args []string) error {
	fs := flag.NewFlagSet("read", flag.ExitOnError)
	file := fs.String("file", "", "day file")
	n := fs.Int("n", 1000, "traces to read, chosen at random")
	seed := fs.Uint64("seed", 1, "seed of the choice")
	mode := fs.String("mode", "one", "one: GetTrace's query; rowid: the row ids first, then the columns of those rows; rowid-first: only the first of those queries; rowid-range: the second by a row id range alone")
	_ = fs.Parse(args)
	db, err := open()
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Exec(fmt.Sprintf("ATTACH '%s' AS d (READ_ONLY)", *file)); err != nil {
		return fmt.Errorf("attach: %w", err)
	}
	// The trace index only: the spans table is not touched before the
	// timed reads.
	rows, err := db.Query("SELECT trace_hi, trace_lo, min(start_min), max(start_max) FROM d.trace_index GROUP BY ALL ORDER BY ALL")
	if err != nil {
		return fmt.Errorf("read trace index: %w", err)
	}
	var ids []trace
	for rows.Next() {
		var t trace
		if err := rows.Scan(&t.hi, &t.lo, &t.min, &t.max); err != nil {
			return fmt.Errorf("read trace index: %w", err)
		}
		ids = append(ids, t)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return fmt.Errorf("read trace index: %w", err)
	}
	rnd := rand.New(rand.NewPCG(*seed, 0))
	rnd.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	ids = ids[:min(*n, len(ids))]
	for _, pass := range []string{"cold", "warm"} {
		var wall, cpu []time.Duration
		spans := 0
		for _, t := range ids {
			t0, c0 := time.Now(), cpuTime()
			k, err := readTrace(db, *mode, t)
			if err != nil {
				return err
			}
			cpu = append(cpu, cpuTime()-c0)
			wall = append(wall, time.Since(t0))
			spans += k
		}
		fmt.Printf("%s %s: wall %s; cpu %s; %d traces, %d spans\n", *mode, pass, summary(wall), summary(cpu), len(ids), spans)
	}
	return layout(db, "d", *file)
}

func summary(ds []time.Duration) string {
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	slices.Sort(ds)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	q := func(p float64) float64 { return ms(ds[int(p*float64(len(ds)-1))]) }
	return fmt.Sprintf("mean %.2f p50 %.2f p90 %.2f p99 %.2f max %.2f ms", ms(sum)/float64(len(ds)), q(.5), q(.9), q(.99), q(1))
}

// cpuTime is the process's CPU time, DuckDB's threads included.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func readTrace(db *sql.DB, mode string, t trace) (int, error) {
	filter := fmt.Sprintf("start_ns BETWEEN %d AND %d AND trace_hi = %d::UBIGINT AND trace_lo = %d::UBIGINT", t.min, t.max, t.hi, t.lo)
	q := "SELECT " + spanColumns + " FROM d.spans WHERE " + filter
	if mode == "rowid" || mode == "rowid-first" || mode == "rowid-range" {
		// Only the filter columns are read by the first query; the second
		// names the rows by id, as a range DuckDB prunes row groups with
		// and a list.
		rows, err := db.Query("SELECT rowid FROM d.spans WHERE " + filter)
		if err != nil {
			return 0, fmt.Errorf("row ids: %w", err)
		}
		var list []string
		lo, hi := int64(-1), int64(-1)
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				return 0, fmt.Errorf("row ids: %w", err)
			}
			if lo < 0 || id < lo {
				lo = id
			}
			hi = max(hi, id)
			list = append(list, strconv.FormatInt(id, 10))
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return 0, fmt.Errorf("row ids: %w", err)
		}
		if len(list) == 0 || mode == "rowid-first" {
			return len(list), nil
		}
		q = fmt.Sprintf("SELECT %s FROM d.spans WHERE rowid BETWEEN %d AND %d AND rowid IN (%s)", spanColumns, lo, hi, strings.Join(list, ","))
		if mode == "rowid-range" {
			q = fmt.Sprintf("SELECT %s FROM d.spans WHERE rowid BETWEEN %d AND %d", spanColumns, lo, hi)
		}
	}
	rows, err := db.Query(q)
	if err != nil {
		return 0, fmt.Errorf("read spans: %w", err)
	}
	defer rows.Close()
	vals := make([]any, 29)
	ptrs := make([]any, len(vals))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	n := 0
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return 0, fmt.Errorf("read spans: %w", err)
		}
		n++
	}
	return n, rows.Err()
}
