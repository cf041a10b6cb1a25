package embedded

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/util/compression"

	"github.com/vigil-observability/vigil/internal/storage"
)

// Defaults of MetricsOptions.
const (
	// DefaultOutOfOrderTimeWindow lets the TSDB accept a sample up to ten
	// minutes older than the newest sample it has seen for the head. Pushed
	// data arrives out of order for ordinary reasons: an OTel Collector's
	// sending queue runs several consumers in parallel and retries failed
	// batches with backoff for up to five minutes, SDK exporters retry too,
	// and Prometheus remote_write resends after an error. Without a window
	// any such late batch would be refused as out of bounds and lost. Ten
	// minutes covers those retry horizons with margin while keeping the
	// out-of-order head (memory and the WBL) small; older data is refused
	// and counted as out_of_order.
	DefaultOutOfOrderTimeWindow = 10 * time.Minute
	// DefaultChunkMmapInterval is how often the TSDB moves full head
	// chunks out of the Go heap into its memory-mapped chunk files. The
	// TSDB's own default, a minute, lets a series sampled every few
	// seconds hold several full chunks in the heap between two passes
	// (about 100 MiB over 100,000 series at a million samples a second,
	// and twice that in RSS once the collector's headroom is counted);
	// every 10 s it holds at most one or two. The same loop reloads
	// blocks, which only lists the data directory when nothing changed.
	DefaultChunkMmapInterval = 10 * time.Second
	// DefaultMaxExemplars sizes the in-memory exemplar ring buffer (about
	// 100 bytes per exemplar).
	DefaultMaxExemplars = 100_000
)

// StorageBytesHelp is the help text of vigil_storage_bytes. Every store
// registering a vigil_storage_bytes{store=...} series must use exactly this
// text, because the Prometheus registry refuses two descriptors of one
// metric name with different help.
const StorageBytesHelp = "Bytes the store occupies on disk."

// MetricsOptions configures the embedded Prometheus TSDB.
type MetricsOptions struct {
	// Dir holds the WAL, the WBL, head chunks and blocks. Required.
	Dir string
	// Retention is how long samples are kept (storage.DefaultRetention if 0).
	Retention time.Duration
	// OutOfOrderTimeWindow is how far behind the newest sample a sample may
	// still be accepted (DefaultOutOfOrderTimeWindow if 0; negative disables
	// out-of-order ingestion).
	OutOfOrderTimeWindow time.Duration
	// MaxExemplars is the exemplar buffer size (DefaultMaxExemplars if 0;
	// negative disables exemplar storage).
	MaxExemplars int64
	// ChunkMmapInterval is how often full head chunks leave the heap for
	// the memory-mapped chunk files (DefaultChunkMmapInterval if 0; the
	// TSDB clamps it to at least a second).
	ChunkMmapInterval time.Duration
	// QuarantineDir receives damaged blocks, under tsdb/ (the directory
	// "quarantine" beside Dir if empty).
	QuarantineDir string
	// Logger receives the TSDB's own logs; nil discards them.
	Logger *slog.Logger
	// Registerer receives the prometheus_tsdb_* metrics,
	// vigil_storage_bytes{store="tsdb"} and
	// vigil_storage_corruptions_total{store="tsdb"}; nil registers nothing.
	Registerer prometheus.Registerer
}

// OpenMetrics opens (or creates) the Prometheus TSDB in opts.Dir, replaying
// its WAL, so that every sample acknowledged before a crash is queryable
// again. Damage found on the way does not stop it: a block that cannot be
// opened is moved to the quarantine directory, a damaged WAL is truncated
// at the damage by the TSDB; either is logged as an error and counted in
// vigil_storage_corruptions_total. The caller owns the returned DB and must Close it. The DB is both a
// storage.Appendable/AppendableV2 for ingest and a storage.Queryable for PromQL.
func OpenMetrics(opts MetricsOptions) (*tsdb.DB, error) {
	if opts.Dir == "" {
		return nil, errors.New("embedded: metrics directory is required")
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	retention := opts.Retention
	if retention <= 0 {
		retention = storage.DefaultRetention
	}
	ooo := opts.OutOfOrderTimeWindow
	switch {
	case ooo == 0:
		ooo = DefaultOutOfOrderTimeWindow
	case ooo < 0:
		ooo = 0
	}
	maxExemplars := opts.MaxExemplars
	switch {
	case maxExemplars == 0:
		maxExemplars = DefaultMaxExemplars
	case maxExemplars < 0:
		maxExemplars = 0
	}

	mmapEvery := opts.ChunkMmapInterval
	if mmapEvery <= 0 {
		mmapEvery = DefaultChunkMmapInterval
	}

	to := tsdb.DefaultOptions()
	// The TSDB m-maps full head chunks in the loop that reloads blocks.
	to.BlockReloadInterval = mmapEvery
	to.RetentionDuration = retention.Milliseconds()
	// Like Prometheus itself: compacted blocks span at most a tenth of the
	// retention (capped at 31 days), so retention deletes data in steps of
	// 10% instead of whole huge blocks.
	to.MaxBlockDuration = max(to.MinBlockDuration, min(retention/10, 31*24*time.Hour).Milliseconds())
	to.OutOfOrderTimeWindow = ooo.Milliseconds()
	// As the Prometheus server does by default: snappy roughly halves the
	// WAL for a few percent of CPU.
	to.WALCompression = compression.Snappy
	to.EnableExemplarStorage = maxExemplars > 0
	to.MaxExemplars = maxExemplars

	qdir := opts.QuarantineDir
	if qdir == "" {
		qdir = defaultQuarantineDir(opts.Dir)
	}
	corruptions := newCorruptionCounter("tsdb", corruptWAL, corruptHeadChunks, corruptBlock)
	if err := quarantineBadBlocks(opts.Dir, filepath.Join(qdir, "tsdb"), logger, corruptions); err != nil {
		return nil, err
	}
	tsdbLog := logger.With("component", "tsdb")
	watch := &damageWatch{next: tsdbLog.Handler(), log: logger, dir: opts.Dir, corruptions: corruptions}
	db, err := tsdb.Open(opts.Dir, slog.New(watch), opts.Registerer, to, nil)
	if err != nil {
		return nil, fmt.Errorf("embedded: open tsdb in %s: %w", opts.Dir, err)
	}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(corruptions); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("embedded: register vigil_storage_corruptions_total{store=\"tsdb\"}: %w", err)
		}
		dir := opts.Dir
		size := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "vigil_storage_bytes",
			Help:        StorageBytesHelp,
			ConstLabels: prometheus.Labels{"store": "tsdb"},
		}, func() float64 { return float64(dirSize(dir)) })
		if err := opts.Registerer.Register(size); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("embedded: register vigil_storage_bytes{store=\"tsdb\"}: %w", err)
		}
	}
	return db, nil
}

// dirSize sums the sizes of the regular files under dir. Walking the
// directory (rather than asking the head and blocks) counts the WAL, the
// WBL, head chunks and blocks alike, and keeps working after the DB closed.
// Files vanishing during the walk (compaction, WAL truncation) are skipped.
func dirSize(dir string) int64 {
	var total int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if info, err := d.Info(); err == nil {
			total += info.Size()
		}
		return nil
	})
	return total
}
