package embedded

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/fileutil"
)

// Kinds of damage counted by vigil_storage_corruptions_total.
const (
	// corruptWAL: a write-ahead log could not be read to its end; what
	// follows the damage was dropped (the TSDB truncates its WAL there, a
	// DuckDB WAL is moved to quarantine whole).
	corruptWAL = "wal"
	// corruptHeadChunks: the TSDB's memory-mapped head chunks were damaged
	// and dropped; the WAL still holds their samples.
	corruptHeadChunks = "head_chunks"
	// corruptBlock: a persisted TSDB block could not be opened and was moved
	// to quarantine.
	corruptBlock = "block"
	// corruptPartition: a DuckDB day file could not be opened and was moved
	// to quarantine.
	corruptPartition = "partition"
)

// newCorruptionCounter returns vigil_storage_corruptions_total of a store
// with every kind it can report present at 0, so that alerts can use
// increase() from the first scrape on.
func newCorruptionCounter(store string, kinds ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        "vigil_storage_corruptions_total",
		Help:        "Damaged storage files found, by kind (wal, head_chunks, block, partition); their data was dropped or moved to quarantine.",
		ConstLabels: prometheus.Labels{"store": store},
	}, []string{"kind"})
	for _, k := range kinds {
		c.WithLabelValues(k)
	}
	return c
}

// defaultQuarantineDir is the quarantine directory next to a store's
// directory: <data-dir>/quarantine.
func defaultQuarantineDir(storeDir string) string {
	return filepath.Join(filepath.Dir(filepath.Clean(storeDir)), "quarantine")
}

// quarantine moves path into dir, keeping its name (suffixed with the time
// when the name is taken), and returns where it went. Moving rather than
// deleting lets a person inspect or salvage the file.
func quarantine(path, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("embedded: create quarantine dir: %w", err)
	}
	dst := filepath.Join(dir, filepath.Base(path))
	if _, err := os.Lstat(dst); err == nil {
		dst += "." + time.Now().UTC().Format("20060102T150405.000000000")
	}
	if err := os.Rename(path, dst); err != nil {
		return "", fmt.Errorf("embedded: move %s to quarantine: %w", path, err)
	}
	return dst, nil
}

// quarantineBadBlocks opens every persisted block in the TSDB directory and
// moves those that fail to open into qdir. tsdb.Open refuses to start with
// a block it cannot open, so one damaged block would otherwise keep all
// metrics offline.
func quarantineBadBlocks(dir, qdir string, log *slog.Logger, corruptions *prometheus.CounterVec) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("embedded: list tsdb dir: %w", err)
	}
	// The TSDB's own lock: a block another process is compacting or
	// deleting may fail to open without being damaged. tsdb.Open takes
	// the lock again right after.
	lockPath := filepath.Join(dir, "lock")
	lock, existed, err := fileutil.Flock(lockPath)
	if err != nil {
		return fmt.Errorf("embedded: lock %s (is another vigil using this data directory?): %w", dir, err)
	}
	defer func() {
		// tsdb.Open takes a lock file it finds as the sign of an unclean
		// stop (a warning, prometheus_tsdb_clean_start 0), so a file this
		// check created goes again; one left by a crash stays for it to
		// report. Removed while still held, so no other process can have
		// taken it in between.
		if !existed {
			_ = os.Remove(lockPath)
		}
		_ = lock.Release()
	}()
	for _, e := range entries {
		if !e.IsDir() || !isULID(e.Name()) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		b, err := tsdb.OpenBlock(slog.New(slog.DiscardHandler), path, nil, nil)
		if err == nil {
			if err := b.Close(); err != nil {
				return fmt.Errorf("embedded: close block %s: %w", path, err)
			}
			continue
		}
		if notDamage(err) {
			return fmt.Errorf("embedded: open block %s: %w", path, err)
		}
		span := blockSpan(path)
		dst, qerr := quarantine(path, qdir)
		if qerr != nil {
			return errors.Join(fmt.Errorf("embedded: damaged block %s: %w", path, err), qerr)
		}
		corruptions.WithLabelValues(corruptBlock).Inc()
		log.Error("damaged TSDB block moved to quarantine: its samples are no longer served",
			"block", path, "quarantined_to", dst, "samples_dropped", span, "err", err)
	}
	return nil
}

// notDamage tells errors that say nothing about a file's contents (no
// permission, a lock another process holds, no file descriptors or memory
// left) from damage: moving a file aside on those would hide good data, so
// start-up fails instead and says why.
func notDamage(err error) bool {
	for _, target := range []error{fs.ErrPermission, syscall.EMFILE, syscall.ENFILE, syscall.ENOMEM, syscall.EAGAIN, syscall.EWOULDBLOCK} {
		if errors.Is(err, target) {
			return true
		}
	}
	// DuckDB reports its errors as text.
	msg := strings.ToLower(err.Error())
	for _, s := range []string{"permission denied", "could not set lock", "conflicting lock", "too many open files", "out of memory", "cannot allocate memory"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// blockSpan describes the time range a block's meta.json claims, for the
// log line saying what was dropped.
func blockSpan(dir string) string {
	raw, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		return "unknown (meta.json unreadable)"
	}
	var m struct {
		MinTime, MaxTime int64
		Stats            struct{ NumSamples uint64 }
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return "unknown (meta.json malformed)"
	}
	return fmt.Sprintf("%d samples from %s to %s", m.Stats.NumSamples,
		time.UnixMilli(m.MinTime).UTC().Format(time.RFC3339), time.UnixMilli(m.MaxTime).UTC().Format(time.RFC3339))
}

// isULID tells a block directory's name (a ULID: 26 characters of
// Crockford base32) from the TSDB's other entries (wal, chunks_head, and
// directories being created or deleted).
func isULID(name string) bool {
	if len(name) != 26 {
		return false
	}
	for _, c := range name {
		if (c < '0' || c > '9') && (c < 'A' || c > 'Z') {
			return false
		}
	}
	return true
}

// tsdbDamage maps the TSDB's own log messages about damage it repaired on
// open to a kind and the line vigil logs about it. The TSDB reports these
// as warnings among its start-up chatter and counts them in metrics of its
// own; vigil raises them to errors that say what was lost.
var tsdbDamage = map[string]struct{ kind, msg string }{
	"Encountered WAL read error, attempting repair": {corruptWAL,
		"damaged TSDB write-ahead log repaired: it was truncated at the damage, samples written after that point are lost"},
	"Encountered WBL read error, attempting repair": {corruptWAL,
		"damaged TSDB out-of-order write-behind log repaired: it was truncated at the damage, out-of-order samples written after that point are lost"},
	"Loading on-disk chunks failed": {corruptHeadChunks,
		"damaged TSDB head chunks dropped: their samples are replayed from the write-ahead log where it still holds them"},
}

// damageWatch passes the TSDB's log records on and, for those reporting
// damage, counts it and logs an error of vigil's own.
type damageWatch struct {
	next        slog.Handler
	log         *slog.Logger
	dir         string
	corruptions *prometheus.CounterVec
}

func (w *damageWatch) Enabled(ctx context.Context, l slog.Level) bool {
	return w.next.Enabled(ctx, l)
}

func (w *damageWatch) Handle(ctx context.Context, r slog.Record) error {
	if d, ok := tsdbDamage[r.Message]; ok {
		w.corruptions.WithLabelValues(d.kind).Inc()
		attrs := []any{"dir", w.dir, "kind", d.kind}
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "err" {
				attrs = append(attrs, "err", a.Value.String(), "file", damagedFile(a.Value.String()))
			}
			return true
		})
		w.log.Error(d.msg, attrs...)
	}
	return w.next.Handle(ctx, r)
}

func (w *damageWatch) WithAttrs(as []slog.Attr) slog.Handler {
	c := *w
	c.next = w.next.WithAttrs(as)
	return &c
}

func (w *damageWatch) WithGroup(name string) slog.Handler {
	c := *w
	c.next = w.next.WithGroup(name)
	return &c
}

// damagedFile picks the segment path out of a WAL corruption error
// ("... corruption in segment <path> at <offset>: ...").
func damagedFile(msg string) string {
	_, rest, ok := strings.Cut(msg, "segment ")
	if !ok {
		return ""
	}
	f, _, _ := strings.Cut(rest, " ")
	return f
}
