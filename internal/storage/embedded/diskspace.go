package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/vigil-observability/vigil/internal/storage"
)

// ErrDiskFull is returned (wrapped, and wrapping storage.ErrUnavailable)
// for a write refused because the data directory's filesystem has less free
// space than the store's reserve. Nothing of the write was stored.
var ErrDiskFull = fmt.Errorf("%w: disk full", storage.ErrUnavailable)

// Bounds of the free-space reserve (DiskReserve).
const (
	minDiskReserve = 1 << 20
	maxDiskReserve = 256 << 20
)

// DiskReserve is the free space below which the embedded stores refuse
// writes: 5% of the filesystem, at least 1MB and at most 256MB. Writes stop
// before the disk is really full because DuckDB does not survive a commit
// failing on ENOSPC: reverting the failed append corrupts rows committed
// earlier, and the damage is checkpointed into the day file. The reserve
// also leaves room for the checkpoints and TSDB compactions that run on
// their own, and for the head chunks the TSDB writes without a way to
// report failure (it panics).
func DiskReserve(dir string) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return minDiskReserve
	}
	return min(max(int64(st.Blocks)*st.Bsize/20, minDiskReserve), maxDiskReserve)
}

// diskGuard refuses writes while the filesystem of dir has less than
// reserve bytes free, and counts and logs the refusals.
type diskGuard struct {
	dir     string
	reserve int64
	log     *slog.Logger
	// failures is vigil_storage_write_failures_total of the store.
	failures *prometheus.CounterVec

	mu   sync.Mutex
	full bool // last check was below the reserve, so that the change is logged once
}

// storageWriteFailuresHelp is the help text of
// vigil_storage_write_failures_total, shared by every store.
const storageWriteFailuresHelp = "Writes the store refused or failed, by reason: disk_full (free space below the reserve, nothing written) or error (the write itself failed)."

func newDiskGuard(store, dir string, reserve int64, log *slog.Logger) *diskGuard {
	if reserve == 0 {
		reserve = DiskReserve(dir)
	}
	return &diskGuard{
		dir: dir, reserve: reserve, log: log,
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "vigil_storage_write_failures_total",
			Help:        storageWriteFailuresHelp,
			ConstLabels: prometheus.Labels{"store": store},
		}, []string{"reason"}),
	}
}

// check returns an error wrapping ErrDiskFull while free space is below the
// reserve. A negative reserve disables the guard.
func (g *diskGuard) check() error {
	if g.reserve < 0 {
		return nil
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(g.dir, &st); err != nil {
		// Not knowing is no reason to refuse: the write reports real errors.
		return nil
	}
	free := int64(st.Bavail) * st.Bsize
	full := free < g.reserve
	g.mu.Lock()
	changed := full != g.full
	g.full = full
	g.mu.Unlock()
	if changed && full {
		g.log.Error("disk almost full: refusing writes until space is freed", "dir", g.dir, "free_bytes", free, "reserve_bytes", g.reserve)
	} else if changed {
		g.log.Info("disk space available again: accepting writes", "dir", g.dir, "free_bytes", free, "reserve_bytes", g.reserve)
	}
	if !full {
		return nil
	}
	g.failures.WithLabelValues("disk_full").Inc()
	return fmt.Errorf("%w: %d bytes free in %s, below the %d bytes kept in reserve", ErrDiskFull, free, g.dir, g.reserve)
}

// failed counts a write that failed in the store itself.
func (g *diskGuard) failed() { g.failures.WithLabelValues("error").Inc() }

// GuardedMetrics is the TSDB with appends refused (at Commit, with an error
// wrapping ErrDiskFull) while its disk is below the reserve. Reads and
// everything else go to the DB unchanged.
type GuardedMetrics struct {
	*tsdb.DB
	guard *diskGuard
}

var _ storage.MetricStore = (*GuardedMetrics)(nil)

// GuardMetricsOptions configures GuardMetrics.
type GuardMetricsOptions struct {
	// Dir is the TSDB directory, whose filesystem is watched.
	Dir string
	// Reserve is the free space below which appends are refused
	// (DiskReserve(Dir) if 0; negative disables the guard).
	Reserve int64
	// Logger receives the guard's logs; nil discards them.
	Logger *slog.Logger
	// Registerer receives vigil_storage_write_failures_total{store="tsdb"};
	// nil registers nothing.
	Registerer prometheus.Registerer
}

// GuardMetrics wraps db so that its AppenderV2 refuses to commit while the
// disk is almost full.
func GuardMetrics(db *tsdb.DB, opts GuardMetricsOptions) (*GuardedMetrics, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := newDiskGuard("tsdb", opts.Dir, opts.Reserve, log)
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(g.failures); err != nil {
			return nil, fmt.Errorf("embedded: register vigil_storage_write_failures_total{store=\"tsdb\"}: %w", err)
		}
	}
	return &GuardedMetrics{DB: db, guard: g}, nil
}

// Capabilities are the TSDB's: exemplars, its head and its status and
// admin surface.
func (m *GuardedMetrics) Capabilities() storage.MetricCapabilities {
	return storage.TSDBCapabilities(m.DB)
}

// AppenderV2 returns the DB's appender, whose Commit first checks the disk.
func (m *GuardedMetrics) AppenderV2(ctx context.Context) promstorage.AppenderV2 {
	return &guardedAppender{AppenderV2: m.DB.AppenderV2(ctx), guard: m.guard}
}

type guardedAppender struct {
	promstorage.AppenderV2
	guard *diskGuard
}

func (a *guardedAppender) Commit() error {
	if err := a.guard.check(); err != nil {
		return errors.Join(err, a.AppenderV2.Rollback())
	}
	if err := a.AppenderV2.Commit(); err != nil {
		a.guard.failed()
		return fmt.Errorf("%w: %w", storage.ErrUnavailable, err)
	}
	return nil
}
