package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	_ "github.com/duckdb/duckdb-go/v2" // the "duckdb" database/sql driver
)

func runRedSQL(args []string) error {
	fs := flag.NewFlagSet("red-sql", flag.ExitOnError)
	dataDir := fs.String("data-dir", "", "data directory gen filled (no server may have it open)")
	n := fs.Int("n", 5, "timed runs of each query (after one warm-up)")
	_ = fs.Parse(args)
	if *dataDir == "" {
		return errors.New("red-sql: --data-dir is required")
	}
	m, err := readMeta(*dataDir)
	if err != nil {
		return fmt.Errorf("red-sql: %w", err)
	}
	return redSQL(*dataDir, m.End, m.window(), *n)
}

// redSQL is the alternative to recording span metrics into the TSDB: per
// service request rate, error ratio and latency quantiles of SERVER spans
// computed at query time from the stored spans. It opens the day files read
// only in a fresh DuckDB with the store's settings (1GB memory limit, one
// thread per CPU), and times the query over the last hour and the whole
// window, as /api/red/services answers them.
func redSQL(dataDir string, end time.Time, window time.Duration, n int) error {
	ctx := context.Background()
	files, err := filepath.Glob(filepath.Join(dataDir, "spanlogs", "spanlog-*.duckdb"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("red-sql: no day files in %s", filepath.Join(dataDir, "spanlogs"))
	}
	slices.Sort(files)
	db, err := sql.Open("duckdb", fmt.Sprintf("?memory_limit=1GB&threads=%d", runtime.GOMAXPROCS(0)))
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1) // ATTACH is per database instance, but keep one session anyway
	var aliases []string
	for i, f := range files {
		alias := fmt.Sprintf("d%d", i)
		if _, err := db.ExecContext(ctx, fmt.Sprintf("ATTACH '%s' AS %s (READ_ONLY)", strings.ReplaceAll(f, "'", "''"), alias)); err != nil {
			return fmt.Errorf("red-sql: attach %s: %w", f, err)
		}
		aliases = append(aliases, alias)
	}
	fmt.Printf("red-sql: %d day files attached read-only; %d thread(s), memory_limit 1GB\n", len(files), runtime.GOMAXPROCS(0))
	fileUsage(ctx, db, aliases)

	for _, w := range []time.Duration{time.Hour, window} {
		lo, hi := end.Add(-w).UnixNano(), end.Add(time.Second).UnixNano()
		var parts []string
		for _, a := range aliases {
			// Literal bounds, as the store's own reads use, so that zonemaps
			// prune row groups. kind 2 is SERVER; status_code 2 is ERROR.
			parts = append(parts, fmt.Sprintf(
				"SELECT service, status_code, duration_ns FROM %s.spans WHERE kind = 2 AND start_ns >= %d AND start_ns < %d", a, lo, hi))
		}
		union := strings.Join(parts, " UNION ALL ")
		// What /api/red/services answers: the figures over the window...
		totals := fmt.Sprintf(`SELECT service, count(*) / %f AS rate, avg((status_code = 2)::DOUBLE) AS error_ratio,
	quantile_cont(duration_ns, [0.5, 0.95, 0.99]) AS q
FROM (%s) GROUP BY service ORDER BY service`, w.Seconds(), union)
		// ...and its sparklines: rate, error ratio and p99 in 30 bins.
		binNs := (hi - lo) / 30
		spark := fmt.Sprintf(`SELECT count(*) FROM (SELECT service, (start_ns - %d) // %d AS bin, count(*) / %f AS rate,
	avg((status_code = 2)::DOUBLE) AS error_ratio, quantile_cont(duration_ns, 0.99) AS p99
FROM (SELECT service, status_code, duration_ns, start_ns FROM (%s)) GROUP BY ALL)`,
			lo, binNs, float64(binNs)/1e9, strings.ReplaceAll(union, "SELECT service, status_code, duration_ns FROM", "SELECT service, status_code, duration_ns, start_ns FROM"))
		for _, variant := range []struct {
			label, q string
			scan     func(context.Context, *sql.DB, string) (int, string, error)
		}{
			{"rate, error ratio, p50/p95/p99 per service", totals, queryRED},
			{"sparklines (30 bins of rate, error ratio, p99 per service)", spark, queryCount},
		} {
			var times []time.Duration
			var rows int
			var sample string
			for i := range n + 1 {
				t0 := time.Now()
				r, first, err := variant.scan(ctx, db, variant.q)
				if err != nil {
					return fmt.Errorf("red-sql: %w\n%s", err, variant.q)
				}
				if i > 0 { // the first run warms the page cache and DuckDB's buffers
					times = append(times, time.Since(t0))
				}
				rows, sample = r, first
			}
			slices.Sort(times)
			fmt.Printf("red-sql: %v, %s of SERVER spans: median %v (min %v, max %v, %d runs); %d rows%s\n",
				w, variant.label, times[len(times)/2].Round(time.Millisecond), times[0].Round(time.Millisecond),
				times[len(times)-1].Round(time.Millisecond), len(times), rows, sample)
		}
	}
	return nil
}

func queryRED(ctx context.Context, db *sql.DB, q string) (int, string, error) {
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return 0, "", err
	}
	defer rows.Close()
	n := 0
	var first string
	for rows.Next() {
		var svc string
		var rate, errRatio float64
		var qs []any
		if err := rows.Scan(&svc, &rate, &errRatio, &qs); err != nil {
			return 0, "", err
		}
		if n == 0 {
			var ms []string
			for _, v := range qs {
				if f, ok := v.(float64); ok {
					ms = append(ms, fmt.Sprintf("%.1fms", f/1e6))
				}
			}
			first = fmt.Sprintf(", e.g. %s rate=%.3f/s errors=%.2f%% p50/p95/p99=%s", svc, rate, 100*errRatio, strings.Join(ms, "/"))
		}
		n++
	}
	return n, first, rows.Err()
}

// fileUsage prints each day file's used and free blocks: spans and log
// records share the files, so the bytes per item gen prints cover both.
func fileUsage(ctx context.Context, db *sql.DB, aliases []string) {
	for _, a := range aliases {
		var size, wal string
		var blockSize, used, free int64
		err := db.QueryRowContext(ctx, `SELECT database_size, block_size, used_blocks, free_blocks, wal_size
			FROM pragma_database_size() WHERE database_name = ?`, a).Scan(&size, &blockSize, &used, &free, &wal)
		if err != nil {
			fmt.Println("red-sql: database size:", err)
			return
		}
		var spans, logs int64
		_ = db.QueryRowContext(ctx, fmt.Sprintf("SELECT (SELECT count(*) FROM %[1]s.spans), (SELECT count(*) FROM %[1]s.logs)", a)).Scan(&spans, &logs)
		fmt.Printf("red-sql: %s: %s, %d used and %d free blocks of %d KiB, WAL %s; %d spans, %d log records\n",
			a, size, used, free, blockSize>>10, wal, spans, logs)
	}
}

func queryCount(ctx context.Context, db *sql.DB, q string) (int, string, error) {
	var n int
	err := db.QueryRowContext(ctx, q).Scan(&n)
	return n, "", err
}
