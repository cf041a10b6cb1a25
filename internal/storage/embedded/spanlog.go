// Package embedded is vigil's single-node storage: the Prometheus TSDB for
// metrics (metrics.go) and DuckDB for spans and logs (spanlog*.go), both
// living under the server's data directory.
package embedded

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-observability/vigil/internal/storage"
)

// Defaults of SpanLogOptions.
const (
	// DefaultMemoryLimit caps DuckDB's buffer pool.
	DefaultMemoryLimit = storage.DefaultDuckDBMemoryLimit
	// DefaultCheckpointThreshold is the WAL size at which DuckDB folds a
	// day's WAL into its compressed file. DuckDB's 16MB default checkpoints
	// so often that each checkpoint rewrites the still-growing last row
	// group: measured with realistic spans it cost about twice the CPU and
	// left 30-70% of the file as free blocks. 128MB bounds WAL replay at
	// start-up to a few seconds and the uncompressed tail in memory.
	DefaultCheckpointThreshold = "128MB"
	// DefaultIdleCheckpoint is how long after its last write a day file is
	// checkpointed. Until a checkpoint DuckDB holds the rows a WAL
	// replays uncompressed in memory (110 MiB for 100,000 spans and as
	// many log records, 8 MiB once checkpointed), so a store that went
	// quiet would keep up to CheckpointThreshold's worth resident for
	// good. A sender that is still sending exports every few seconds, so a
	// minute without a write means the burst is over.
	DefaultIdleCheckpoint = time.Minute
	// retentionInterval is how often the background loop applies Retention.
	// Partitions are days, so hourly is precise enough.
	retentionInterval = time.Hour
)

// SpanLogOptions configures the DuckDB span and log store.
type SpanLogOptions struct {
	// Dir holds one DuckDB file (plus its WAL) per UTC day. Required.
	Dir string
	// Retention is how long spans and logs are kept (storage.DefaultRetention
	// if 0). Whole days are dropped once all of their data is older.
	Retention time.Duration
	// MemoryLimit is DuckDB's memory_limit, e.g. "512MB" (DefaultMemoryLimit
	// if empty).
	MemoryLimit string
	// CheckpointThreshold is DuckDB's checkpoint_threshold
	// (DefaultCheckpointThreshold if empty).
	CheckpointThreshold string
	// Threads is DuckDB's worker thread count (GOMAXPROCS if 0).
	Threads int
	// IdleCheckpoint is how long after its last write a day file is
	// checkpointed, which folds its WAL into the file and frees the rows
	// DuckDB keeps in memory until then (DefaultIdleCheckpoint if 0;
	// negative leaves checkpoints to CheckpointThreshold alone).
	IdleCheckpoint time.Duration
	// TraceLocations bounds how many traces' locations the store holds in
	// memory (spanlog_traceloc.go), 35 to 55 bytes each
	// (DefaultTraceLocations if 0; negative holds none). Days that do not
	// fit, the oldest first, are looked up in their files instead, several
	// times slower.
	TraceLocations int
	// RecentTraceBytes bounds the memory holding the spans of the traces
	// written last, which trace reads take from there instead of the
	// files (spanlog_recent.go): DefaultRecentTraceBytes if 0, none if
	// negative.
	RecentTraceBytes int64
	// DiskReserve is the free space on Dir's filesystem below which writes
	// are refused with ErrDiskFull (DiskReserve(Dir) if 0; negative
	// disables the check).
	DiskReserve int64
	// QuarantineDir receives damaged day files and WALs, under spanlogs/
	// (the directory "quarantine" beside Dir if empty).
	QuarantineDir string
	// InlineLogStreams creates new day files in the layout before
	// log_streams, each record holding its resource and scope in columns
	// of its own (for tests of that layout, which older files keep).
	InlineLogStreams bool
	// Logger receives the store's own logs; nil discards them.
	Logger *slog.Logger
	// Registerer receives vigil_storage_bytes{store="duckdb"},
	// vigil_storage_write_failures_total{store="duckdb"} and
	// vigil_storage_corruptions_total{store="duckdb"}; nil registers
	// nothing.
	Registerer prometheus.Registerer
	// Now is the clock for retention and partition routing (time.Now if
	// nil); tests set it.
	Now func() time.Time
}

// SpanLogStore keeps spans and logs in DuckDB, one database file per UTC day,
// all ATTACHed to one in-memory DuckDB instance. It implements
// storage.SpanLogStore and storage.Retainer.
//
// Each WriteTraces or WriteLogs call is one DuckDB transaction per day it
// touches (DuckDB lets a transaction write to only one attached database),
// appended through DuckDB's Appender and committed before the call returns;
// a DuckDB commit writes and fsyncs the WAL of that file. A batch that spans
// a UTC midnight is therefore committed in two steps, and if the second
// fails the caller's retry stores the first part again.
type SpanLogStore struct {
	opts SpanLogOptions
	log  *slog.Logger
	db   *sql.DB

	// mu orders operations against Close and against DropBefore, which
	// detaches files: every read and write holds it shared for its whole
	// duration, Close and DropBefore hold it exclusively.
	mu     sync.RWMutex
	closed bool

	// pmu guards parts and written. Attaching a new day happens under mu
	// held shared.
	pmu   sync.Mutex
	parts map[int64]*partition // by day number since the Unix epoch
	// written holds, by day, when a commit last wrote to a day file that
	// has not been checkpointed since (checkpointIdle).
	written map[int64]time.Time
	// locCount is how many traces the days' in-memory indexes hold.
	locCount atomic.Int64
	// deferLocs is set while the store opens: the days attached then load
	// their trace indexes afterwards (loadTraceLocsLater), and locsLoaded
	// is closed once they have.
	deferLocs  bool
	locsLoaded chan struct{}
	// recent holds the traces written last (spanlog_recent.go); nil
	// holds none.
	recent *recentTraces

	guard       *diskGuard
	corruptions *prometheus.CounterVec
	gauge       prometheus.Collector
	stop        context.CancelFunc
	done        chan struct{}
}

// partition is one day's database file.
type partition struct {
	day   int64
	alias string // catalog name in DuckDB
	path  string
	// logMin and logMax bound the log timestamps stored (ns), so reads can
	// skip days; they can lie outside the day when routing clamped a record.
	// logMin > logMax means no logs. Guarded by SpanLogStore.pmu.
	logMin, logMax int64
	// spanMin and spanMax bound the span start times stored (ns), the same
	// way: a day file also holds the spans routing clamped into it, such
	// as those dated up to limits.max_future_skew ahead, in the next day's
	// file. spanMin > spanMax means no spans. Guarded by SpanLogStore.pmu.
	spanMin, spanMax int64
	// ops lists the day's operations (spanlog_index.go).
	ops *opSet
	// locs is the day's trace index in memory (spanlog_traceloc.go).
	locs *traceLocs
	// counts tells when the day's log count summary is compacted
	// (spanlog_logcounts.go).
	counts *logCountState
	// totals is the summary summed in memory (spanlog_logtotals.go).
	// Guarded by SpanLogStore.pmu, with logMin and logMax.
	totals logTotals
	// streams numbers the day's log streams (spanlog_streams.go); nil
	// for a file in the layout before log_streams.
	streams *logStreams
}

var (
	_ storage.SpanLogStore = (*SpanLogStore)(nil)
	_ storage.Retainer     = (*SpanLogStore)(nil)
)

const (
	partPrefix = "spanlog-"
	partSuffix = ".duckdb"
	dayNanos   = int64(24 * time.Hour)
)

// OpenSpanLogStore opens (or creates) the store in opts.Dir, attaching every
// day file found there and dropping those already past retention.
func OpenSpanLogStore(ctx context.Context, opts SpanLogOptions) (*SpanLogStore, error) {
	if opts.Dir == "" {
		return nil, errors.New("embedded: SpanLogOptions.Dir is required")
	}
	if opts.Retention <= 0 {
		opts.Retention = storage.DefaultRetention
	}
	if opts.MemoryLimit == "" {
		opts.MemoryLimit = DefaultMemoryLimit
	}
	if opts.CheckpointThreshold == "" {
		opts.CheckpointThreshold = DefaultCheckpointThreshold
	}
	if opts.Threads <= 0 {
		opts.Threads = runtime.GOMAXPROCS(0)
	}
	if opts.IdleCheckpoint == 0 {
		opts.IdleCheckpoint = DefaultIdleCheckpoint
	}
	switch {
	case opts.TraceLocations == 0:
		opts.TraceLocations = DefaultTraceLocations
	case opts.TraceLocations < 0:
		opts.TraceLocations = 0
	}
	if opts.RecentTraceBytes == 0 {
		opts.RecentTraceBytes = DefaultRecentTraceBytes
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("embedded: create span/log dir: %w", err)
	}
	tmp := filepath.Join(opts.Dir, ".tmp")
	// Settings go in the DSN so they apply before DuckDB allocates anything.
	cfg := url.Values{}
	cfg.Set("memory_limit", opts.MemoryLimit)
	cfg.Set("checkpoint_threshold", opts.CheckpointThreshold)
	cfg.Set("threads", strconv.Itoa(opts.Threads))
	cfg.Set("temp_directory", tmp)
	cfg.Set("autoinstall_known_extensions", "false")
	cfg.Set("autoload_known_extensions", "false")
	// Return what a checkpoint frees to the system at once: DuckDB's
	// allocator would otherwise keep it (512MB by default) until its own
	// decay runs, which an idle store never triggers.
	cfg.Set("allocator_bulk_deallocation_flush_threshold", "32MB")
	connector, err := duckdb.NewConnector("?"+cfg.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("embedded: open duckdb: %w", err)
	}
	s := &SpanLogStore{
		opts:    opts,
		log:     log,
		db:      sql.OpenDB(connector),
		parts:   map[int64]*partition{},
		recent:  newRecentTraces(opts.RecentTraceBytes),
		written: map[int64]time.Time{},
		guard:   newDiskGuard("duckdb", opts.Dir, opts.DiskReserve, log),

		corruptions: newCorruptionCounter("duckdb", corruptWAL, corruptPartition),
	}
	// Writers each hold a connection for their transaction; keep a few
	// around instead of reconnecting per batch.
	s.db.SetMaxIdleConns(max(4, opts.Threads))

	s.deferLocs, s.locsLoaded = true, make(chan struct{})
	err = s.attachExisting(ctx)
	s.deferLocs = false
	if err != nil {
		_ = s.db.Close()
		return nil, err
	}
	if n, err := s.DropBefore(ctx, s.retentionCut()); err != nil {
		_ = s.db.Close()
		return nil, err
	} else if n > 0 {
		log.Info("dropped expired span/log partitions", "count", n)
	}
	if opts.Registerer != nil {
		g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "vigil_storage_bytes",
			Help:        StorageBytesHelp,
			ConstLabels: prometheus.Labels{"store": "duckdb"},
		}, func() float64 { return float64(s.DiskBytes()) })
		if err := opts.Registerer.Register(g); err != nil {
			_ = s.db.Close()
			return nil, fmt.Errorf("embedded: register duckdb metrics: %w", err)
		}
		if err := errors.Join(opts.Registerer.Register(s.guard.failures), opts.Registerer.Register(s.corruptions)); err != nil {
			opts.Registerer.Unregister(g)
			opts.Registerer.Unregister(s.guard.failures)
			opts.Registerer.Unregister(s.corruptions)
			_ = s.db.Close()
			return nil, fmt.Errorf("embedded: register duckdb metrics: %w", err)
		}
		s.gauge = g
	}
	loopCtx, stop := context.WithCancel(context.Background())
	s.stop, s.done = stop, make(chan struct{})
	go s.retentionLoop(loopCtx)
	return s, nil
}

func (s *SpanLogStore) retentionCut() time.Time {
	return s.opts.Now().Add(-s.opts.Retention)
}

func (s *SpanLogStore) retentionLoop(ctx context.Context) {
	defer close(s.done)
	s.loadTraceLocsLater(ctx)
	t := time.NewTicker(retentionInterval)
	defer t.Stop()
	var idle <-chan time.Time
	if s.opts.IdleCheckpoint > 0 {
		it := time.NewTicker(max(s.opts.IdleCheckpoint/4, time.Millisecond))
		defer it.Stop()
		idle = it.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-idle:
			if err := s.checkpointIdle(ctx); err != nil && !errors.Is(err, storage.ErrClosed) && ctx.Err() == nil {
				// The next tick tries again, and DuckDB checkpoints at
				// CheckpointThreshold regardless.
				s.log.Warn("span/log idle checkpoint failed", "err", err)
			}
		case <-t.C:
			n, err := s.DropBefore(ctx, s.retentionCut())
			switch {
			case err != nil && !errors.Is(err, storage.ErrClosed) && ctx.Err() == nil:
				s.log.Error("span/log retention failed", "err", err)
			case n > 0:
				s.log.Info("dropped expired span/log partitions", "count", n)
			}
		}
	}
}

// Close stops retention, checkpoints and closes every day file. Later calls
// of any method return storage.ErrClosed; closing twice is harmless.
func (s *SpanLogStore) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.stop()
	<-s.done
	// No write is in flight any more (closed was set under mu), so the
	// locations in memory cover every row of the tables.
	for _, p := range s.snapshot() {
		if err := s.writeTraceLocsFile(context.Background(), &p); err != nil {
			s.log.Warn("trace locations of a day not written for the next start: it will read the day's trace index", "file", p.path, "err", err)
		}
	}
	if s.gauge != nil {
		s.opts.Registerer.Unregister(s.gauge)
		s.opts.Registerer.Unregister(s.guard.failures)
		s.opts.Registerer.Unregister(s.corruptions)
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("embedded: close duckdb: %w", err)
	}
	return nil
}

// DiskBytes reports the bytes the day files and their WALs occupy.
func (s *SpanLogStore) DiskBytes() int64 {
	entries, err := os.ReadDir(s.opts.Dir)
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), partPrefix) {
			continue
		}
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() {
			n += info.Size()
		}
	}
	return n
}

// Checkpoint folds every day's WAL into its compressed database file. The
// store does this on its own (DuckDB checkpoints when a WAL grows past
// SpanLogOptions.CheckpointThreshold, 128MB by default, and on Close); it
// is exported for tests and benchmarks that measure size.
func (s *SpanLogStore) Checkpoint(ctx context.Context) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return storage.ErrClosed
	}
	for _, p := range s.snapshot() {
		if _, err := s.db.ExecContext(ctx, "CHECKPOINT "+p.alias); err != nil {
			return fmt.Errorf("embedded: checkpoint %s: %w", p.alias, err)
		}
	}
	return nil
}

// checkpointIdle checkpoints every day file that has been written to but
// not for IdleCheckpoint.
func (s *SpanLogStore) checkpointIdle(ctx context.Context) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return storage.ErrClosed
	}
	now := time.Now()
	type due struct {
		p    *partition
		last time.Time
	}
	var dues []due
	s.pmu.Lock()
	for day, last := range s.written {
		if now.Sub(last) >= s.opts.IdleCheckpoint {
			if p := s.parts[day]; p != nil {
				dues = append(dues, due{p, last})
			}
		}
	}
	s.pmu.Unlock()
	for _, d := range dues {
		if _, err := s.db.ExecContext(ctx, "CHECKPOINT "+d.p.alias); err != nil {
			return fmt.Errorf("embedded: checkpoint %s: %w", d.p.alias, err)
		}
		s.pmu.Lock()
		// A write during the checkpoint keeps the day due.
		if s.written[d.p.day].Equal(d.last) {
			delete(s.written, d.p.day)
		}
		s.pmu.Unlock()
	}
	return nil
}

// noteWritten records a commit to a day file for checkpointIdle.
func (s *SpanLogStore) noteWritten(day int64) {
	if s.opts.IdleCheckpoint <= 0 {
		return
	}
	now := time.Now()
	s.pmu.Lock()
	s.written[day] = now
	s.pmu.Unlock()
}

// DropBefore detaches and deletes every day file whose whole day lies
// before t. Data routed into a day by clamping goes with that day.
func (s *SpanLogStore) DropBefore(ctx context.Context, t time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, storage.ErrClosed
	}
	cut := floorDiv(t.UnixNano(), dayNanos) // first day that is kept
	var victims []*partition
	s.pmu.Lock()
	for d, p := range s.parts {
		if d < cut {
			victims = append(victims, p)
		}
	}
	s.pmu.Unlock()
	slices.SortFunc(victims, func(a, b *partition) int { return cmp.Compare(a.day, b.day) })
	if len(victims) > 0 {
		// Held traces may have spans in the days dropped.
		s.recent.clear()
	}
	n := 0
	for _, p := range victims {
		if _, err := s.db.ExecContext(ctx, "DETACH "+p.alias); err != nil {
			return n, fmt.Errorf("embedded: detach %s: %w", p.alias, err)
		}
		s.pmu.Lock()
		delete(s.parts, p.day)
		delete(s.written, p.day)
		s.pmu.Unlock()
		s.locCount.Add(-int64(p.locs.drop()))
		for _, f := range []string{p.path, p.path + ".wal", p.path + locsFileSuffix} {
			if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
				return n, fmt.Errorf("embedded: remove %s: %w", f, err)
			}
		}
		n++
	}
	return n, nil
}

// attachExisting attaches every day file in Dir.
func (s *SpanLogStore) attachExisting(ctx context.Context) error {
	entries, err := os.ReadDir(s.opts.Dir)
	if err != nil {
		return fmt.Errorf("embedded: list span/log dir: %w", err)
	}
	for _, e := range entries {
		day, ok := parsePartName(e.Name())
		if !ok {
			continue
		}
		if _, err := s.attach(ctx, day); err != nil {
			if ctx.Err() != nil || notDamage(err) {
				return err
			}
			if err := s.quarantineDay(ctx, day, filepath.Join(s.opts.Dir, e.Name()), err); err != nil {
				return err
			}
		}
	}
	return nil
}

// quarantineDay deals with a day file that would not attach: first its WAL
// goes to quarantine (a torn or damaged WAL is the likelier cause, and
// without it the checkpointed rows are still served); if the file still
// does not attach, it follows. Either way the store starts, and an error
// line and vigil_storage_corruptions_total say what is no longer served.
func (s *SpanLogStore) quarantineDay(ctx context.Context, day int64, path string, cause error) error {
	qdir := s.opts.QuarantineDir
	if qdir == "" {
		qdir = defaultQuarantineDir(s.opts.Dir)
	}
	qdir = filepath.Join(qdir, "spanlogs")
	// What the day's rows were at the last close no longer holds.
	if err := removeIfExists(path + locsFileSuffix); err != nil {
		return errors.Join(cause, err)
	}
	wal, walDst := path+".wal", ""
	if _, err := os.Stat(wal); err == nil {
		dst, err := quarantine(wal, qdir)
		if err != nil {
			return errors.Join(cause, err)
		}
		walDst = dst
		// DuckDB names the first entry whose checksum fails: the entries
		// before it are whole, so a WAL cut there replays them.
		if pos, ok := walDamageOffset(cause); ok {
			if err := copyPrefix(dst, wal, pos); err == nil {
				if _, err := s.attach(ctx, day); err == nil {
					s.corruptions.WithLabelValues(corruptWAL).Inc()
					s.log.Error("damaged span/log write-ahead log truncated at the damage: the day's spans and logs written after that point are lost",
						"file", wal, "truncated_at", pos, "quarantined_to", walDst, "err", cause)
					return nil
				}
			}
			_ = os.Remove(wal)
		}
		if _, err := s.attach(ctx, day); err == nil {
			s.corruptions.WithLabelValues(corruptWAL).Inc()
			s.log.Error("damaged span/log write-ahead log moved to quarantine: the day's spans and logs written since its last checkpoint are no longer served",
				"file", wal, "quarantined_to", walDst, "err", cause)
			return nil
		}
	}
	dst, err := quarantine(path, qdir)
	if err != nil {
		return errors.Join(cause, err)
	}
	s.corruptions.WithLabelValues(corruptPartition).Inc()
	attrs := []any{"file", path, "quarantined_to", dst, "err", cause}
	if walDst != "" {
		attrs = append(attrs, "wal_quarantined_to", walDst)
	}
	s.log.Error("damaged span/log day file moved to quarantine: the day's spans and logs are no longer served", attrs...)
	return nil
}

// partitionFor returns the day's partition, attaching (and creating) it if
// needed. The caller holds mu shared.
func (s *SpanLogStore) partitionFor(ctx context.Context, day int64) (*partition, error) {
	s.pmu.Lock()
	p := s.parts[day]
	s.pmu.Unlock()
	if p != nil {
		return p, nil
	}
	return s.attach(ctx, day)
}

func (s *SpanLogStore) attach(ctx context.Context, day int64) (*partition, error) {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	if p := s.parts[day]; p != nil {
		return p, nil
	}
	date := time.Unix(day*86400, 0).UTC().Format("20060102")
	p := &partition{
		day:    day,
		alias:  "p" + date,
		path:   filepath.Join(s.opts.Dir, partPrefix+date+partSuffix),
		logMin: math.MaxInt64, logMax: math.MinInt64,
		spanMin: math.MaxInt64, spanMax: math.MinInt64,
		counts: &logCountState{done: -1},
	}
	// STORAGE_VERSION enables per-column ZSTD compression.
	stmts := []string{
		fmt.Sprintf("ATTACH %s AS %s (STORAGE_VERSION 'v1.4.0')", sqlString(p.path), p.alias),
		fmt.Sprintf(spansDDL, p.alias),
	}
	for _, q := range stmts {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			if strings.HasPrefix(q, "ATTACH") {
				return nil, fmt.Errorf("embedded: attach %s: %w", p.path, err)
			}
			_, _ = s.db.ExecContext(context.WithoutCancel(ctx), "DETACH "+p.alias)
			return nil, fmt.Errorf("embedded: create tables in %s: %w", p.path, err)
		}
	}
	if err := s.prepareLogTables(ctx, p); err != nil {
		_, _ = s.db.ExecContext(context.WithoutCancel(ctx), "DETACH "+p.alias)
		return nil, err
	}
	if err := s.prepareIndexes(ctx, p); err != nil {
		_, _ = s.db.ExecContext(context.WithoutCancel(ctx), "DETACH "+p.alias)
		return nil, err
	}
	if err := s.prepareLogCounts(ctx, p); err != nil {
		_, _ = s.db.ExecContext(context.WithoutCancel(ctx), "DETACH "+p.alias)
		return nil, err
	}
	var lo, hi sql.NullInt64
	if err := s.db.QueryRowContext(ctx, "SELECT min(ts_ns), max(ts_ns) FROM "+p.alias+".logs").Scan(&lo, &hi); err != nil {
		_, _ = s.db.ExecContext(context.WithoutCancel(ctx), "DETACH "+p.alias)
		return nil, fmt.Errorf("embedded: read log range of %s: %w", p.path, err)
	}
	if lo.Valid {
		p.logMin, p.logMax = lo.Int64, hi.Int64
	}
	if err := s.loadLogTotals(ctx, p); err != nil {
		_, _ = s.db.ExecContext(context.WithoutCancel(ctx), "DETACH "+p.alias)
		return nil, err
	}
	// The trace index is a fraction of the spans' size and holds the same
	// bounds.
	if err := s.db.QueryRowContext(ctx, "SELECT min(start_min), max(start_max) FROM "+p.alias+".trace_index").Scan(&lo, &hi); err != nil {
		_, _ = s.db.ExecContext(context.WithoutCancel(ctx), "DETACH "+p.alias)
		return nil, fmt.Errorf("embedded: read span range of %s: %w", p.path, err)
	}
	if lo.Valid {
		p.spanMin, p.spanMax = lo.Int64, hi.Int64
	}
	// Last, so that a failure before it leaves nothing counted.
	if s.deferLocs {
		p.locs = loadingTraceLocs()
	} else if err := s.loadTraceLocs(ctx, p); err != nil {
		_, _ = s.db.ExecContext(context.WithoutCancel(ctx), "DETACH "+p.alias)
		return nil, err
	}
	s.parts[day] = p
	return p, nil
}

// walDamageOffset finds the byte offset of the damaged entry in DuckDB's
// WAL replay error ("Corrupt WAL file: entry at byte position N ...").
func walDamageOffset(err error) (int64, bool) {
	_, rest, ok := strings.Cut(err.Error(), "entry at byte position ")
	if !ok {
		return 0, false
	}
	n, _, _ := strings.Cut(rest, " ")
	pos, perr := strconv.ParseInt(n, 10, 64)
	return pos, perr == nil && pos > 0
}

// copyPrefix writes the first n bytes of src to dst and syncs it.
func copyPrefix(src, dst string, n int64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(out, in, n); err != nil {
		_ = out.Close()
		return err
	}
	return errors.Join(out.Sync(), out.Close())
}

// traceLocsOfAll lists the in-memory trace indexes of every attached day,
// with nil for a day that has none yet.
func (s *SpanLogStore) traceLocsOfAll() []*traceLocs {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	out := make([]*traceLocs, 0, len(s.parts))
	for _, p := range s.parts {
		out = append(out, p.locs)
	}
	return out
}

// snapshot lists the attached partitions, newest day first.
func (s *SpanLogStore) snapshot() []partition {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	out := make([]partition, 0, len(s.parts))
	for _, p := range s.parts {
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b partition) int { return cmp.Compare(b.day, a.day) })
	return out
}

// noteLogs widens the partition's known log time range after a commit
// and adds the batch's totals, at once for readers.
func (s *SpanLogStore) noteLogs(p *partition, lo, hi int64, add map[logTotalKey]logTotal) {
	s.pmu.Lock()
	p.logMin = min(p.logMin, lo)
	p.logMax = max(p.logMax, hi)
	for k, v := range add {
		t := p.totals[k]
		if t == nil {
			t = &logTotal{}
			p.totals[k] = t
		}
		t.n += v.n
		t.bytes += v.bytes
	}
	s.pmu.Unlock()
}

// noteSpans widens the partition's known span time range after a commit.
func (s *SpanLogStore) noteSpans(p *partition, lo, hi int64) {
	s.pmu.Lock()
	p.spanMin = min(p.spanMin, lo)
	p.spanMax = max(p.spanMax, hi)
	s.pmu.Unlock()
}

// holdsSpans reports whether the partition can hold spans starting in
// [start, end).
func (p *partition) holdsSpans(start, end int64) bool {
	return p.spanMin <= p.spanMax && p.spanMax >= start && p.spanMin < end
}

// dayOf routes a timestamp (ns) to a day. Days are clamped to the window
// retention can hold, [now-Retention, now+1 day], so that garbage timestamps
// (zero, far future) cannot create a file per distinct day.
func (s *SpanLogStore) dayOf(ns int64, lo, hi int64) int64 {
	return min(max(floorDiv(ns, dayNanos), lo), hi)
}

func (s *SpanLogStore) dayWindow() (lo, hi int64) {
	now := s.opts.Now()
	return floorDiv(now.Add(-s.opts.Retention).UnixNano(), dayNanos), floorDiv(now.UnixNano(), dayNanos) + 1
}

func parsePartName(name string) (int64, bool) {
	date, ok := strings.CutPrefix(name, partPrefix)
	if !ok {
		return 0, false
	}
	date, ok = strings.CutSuffix(date, partSuffix)
	if !ok {
		return 0, false
	}
	t, err := time.Parse("20060102", date)
	if err != nil {
		return 0, false
	}
	return t.Unix() / 86400, true
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func sqlString(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
