package embedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/vigil-observability/vigil/internal/storage"
)

// DefaultProfileMemoryLimit caps the profile store's DuckDB buffer pool. It
// holds an index and blobs read once per query, so it needs little.
const DefaultProfileMemoryLimit = "128MB"

// ProfileOptions configures the profile store.
type ProfileOptions struct {
	// Dir holds profiles.duckdb and its WAL. Required.
	Dir string
	// Retention is how long profiles are kept (storage.DefaultRetention
	// when zero).
	Retention time.Duration
	// MemoryLimit is DuckDB's memory_limit (DefaultProfileMemoryLimit when
	// empty).
	MemoryLimit string
	Logger      *slog.Logger
	Now         func() time.Time
}

// ProfileStore keeps profiles as gzipped pprof blobs in one DuckDB table,
// beside the columns a query selects them by (service, kind, time range,
// labels, the span ids of their samples). Merging is the reader's work:
// docs/performance.md ("Profiles") has the measurement that chose blobs
// over a table of samples. It implements storage.ProfileStore.
type ProfileStore struct {
	opts ProfileOptions
	log  *slog.Logger
	db   *sql.DB

	mu     sync.Mutex
	closed bool
	stop   context.CancelFunc
	done   chan struct{}
}

var _ storage.ProfileStore = (*ProfileStore)(nil)

const profileSchema = `CREATE TABLE IF NOT EXISTS profiles (
	service  VARCHAR NOT NULL,
	kind     VARCHAR NOT NULL,
	start_ns BIGINT NOT NULL,
	end_ns   BIGINT NOT NULL,
	labels   VARCHAR NOT NULL,
	span_ids VARCHAR NOT NULL,
	data     BLOB NOT NULL
)`

// In the labels and span_ids columns each entry is closed by a separator
// on both sides, so that a filter is one substring test: labels hold
// "\x1fk=v\x1fk2=v2\x1f" (sorted by key), span ids "|id|id2|".
const (
	labelSep = "\x1f"
	spanSep  = "|"
)

// OpenProfileStore opens (creating if needed) the profile store in
// opts.Dir and drops profiles older than the retention.
func OpenProfileStore(ctx context.Context, opts ProfileOptions) (*ProfileStore, error) {
	if opts.Dir == "" {
		panic("embedded: ProfileOptions.Dir is required")
	}
	if opts.Retention <= 0 {
		opts.Retention = storage.DefaultRetention
	}
	if opts.MemoryLimit == "" {
		opts.MemoryLimit = DefaultProfileMemoryLimit
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("embedded: create profile dir: %w", err)
	}
	cfg := url.Values{}
	cfg.Set("memory_limit", opts.MemoryLimit)
	cfg.Set("threads", "1")
	cfg.Set("temp_directory", filepath.Join(opts.Dir, ".tmp"))
	cfg.Set("autoinstall_known_extensions", "false")
	cfg.Set("autoload_known_extensions", "false")
	cfg.Set("allocator_bulk_deallocation_flush_threshold", "16MB")
	connector, err := duckdb.NewConnector(filepath.Join(opts.Dir, "profiles.duckdb")+"?"+cfg.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("embedded: open profile store: %w", err)
	}
	s := &ProfileStore{opts: opts, log: log, db: sql.OpenDB(connector)}
	if _, err := s.db.ExecContext(ctx, profileSchema); err != nil {
		_ = s.db.Close()
		return nil, fmt.Errorf("embedded: create profile table: %w", err)
	}
	if _, err := s.DropBefore(ctx, s.opts.Now().Add(-opts.Retention)); err != nil {
		_ = s.db.Close()
		return nil, err
	}
	loopCtx, stop := context.WithCancel(context.Background())
	s.stop, s.done = stop, make(chan struct{})
	go s.retentionLoop(loopCtx)
	return s, nil
}

func (s *ProfileStore) retentionLoop(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(retentionInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n, err := s.DropBefore(ctx, s.opts.Now().Add(-s.opts.Retention))
			switch {
			case err != nil && ctx.Err() == nil:
				s.log.Error("profile retention failed", "err", err)
			case n > 0:
				s.log.Info("dropped expired profiles", "count", n)
			}
		}
	}
}

// DropBefore deletes the profiles that ended before cut and returns how
// many, checkpointing so that the space is reused.
func (s *ProfileStore) DropBefore(ctx context.Context, cut time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM profiles WHERE end_ns < ?`, cut.UnixNano())
	if err != nil {
		return 0, s.wrap("drop expired profiles", err)
	}
	n, _ := res.RowsAffected()
	if n > 0 {
		if _, err := s.db.ExecContext(ctx, `CHECKPOINT`); err != nil {
			return n, s.wrap("checkpoint after retention", err)
		}
	}
	return n, nil
}

// WriteProfiles stores profiles in one transaction, durable (in DuckDB's
// WAL) when it returns nil.
func (s *ProfileStore) WriteProfiles(ctx context.Context, profiles []storage.Profile) error {
	if len(profiles) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap("begin profile write", err)
	}
	defer func() { _ = tx.Rollback() }()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO profiles VALUES (?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return s.wrap("prepare profile write", err)
	}
	defer func() { _ = stmt.Close() }()
	for _, p := range profiles {
		if _, err := stmt.ExecContext(ctx, p.Service, p.Kind, p.Start.UnixNano(), p.End.UnixNano(),
			encodeProfileLabels(p.Labels), encodeSpanIDs(p.SpanIDs), p.Data); err != nil {
			return s.wrap("write profile", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return s.wrap("commit profiles", err)
	}
	return nil
}

// FindProfiles yields the matching profiles, newest first.
func (s *ProfileStore) FindProfiles(ctx context.Context, q storage.ProfileQuery) iter.Seq2[storage.Profile, error] {
	return func(yield func(storage.Profile, error) bool) {
		if q.Service == "" || q.Kind == "" {
			yield(storage.Profile{}, fmt.Errorf("%w: a profile query needs a service and a kind", storage.ErrInvalidQuery))
			return
		}
		var sb strings.Builder
		sb.WriteString(`SELECT start_ns, end_ns, labels, span_ids, data FROM profiles
			WHERE service = ? AND kind = ? AND end_ns >= ? AND start_ns <= ?`)
		args := []any{q.Service, q.Kind, q.Start.UnixNano(), q.End.UnixNano()}
		for _, k := range slices.Sorted(maps.Keys(q.Labels)) {
			sb.WriteString(` AND contains(labels, ?)`)
			args = append(args, labelSep+cleanLabel(k)+"="+strings.ReplaceAll(q.Labels[k], labelSep, " ")+labelSep)
		}
		if q.SpanID != "" {
			sb.WriteString(` AND contains(span_ids, ?)`)
			args = append(args, spanSep+q.SpanID+spanSep)
		}
		sb.WriteString(` ORDER BY end_ns DESC`)
		if q.Limit > 0 {
			sb.WriteString(fmt.Sprintf(` LIMIT %d`, q.Limit))
		}
		rows, err := s.db.QueryContext(ctx, sb.String(), args...)
		if err != nil {
			yield(storage.Profile{}, s.wrap("find profiles", err))
			return
		}
		defer func() { _ = rows.Close() }()
		for rows.Next() {
			var (
				start, end    int64
				labels, spans string
				data          []byte
			)
			if err := rows.Scan(&start, &end, &labels, &spans, &data); err != nil {
				yield(storage.Profile{}, s.wrap("read profile", err))
				return
			}
			p := storage.Profile{
				Service: q.Service, Kind: q.Kind,
				Start: time.Unix(0, start).UTC(), End: time.Unix(0, end).UTC(),
				Labels: decodeProfileLabels(labels), SpanIDs: decodeSpanIDs(spans), Data: data,
			}
			if !yield(p, nil) {
				return
			}
		}
		if err := rows.Err(); err != nil {
			yield(storage.Profile{}, s.wrap("read profiles", err))
		}
	}
}

// ProfileServices lists the services and kinds with profiles in the range.
func (s *ProfileStore) ProfileServices(ctx context.Context, start, end time.Time) ([]storage.ProfileService, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT DISTINCT service, kind FROM profiles
		WHERE end_ns >= ? AND start_ns <= ? ORDER BY service, kind`, start.UnixNano(), end.UnixNano())
	if err != nil {
		return nil, s.wrap("list profiled services", err)
	}
	defer func() { _ = rows.Close() }()
	var out []storage.ProfileService
	for rows.Next() {
		var svc, kind string
		if err := rows.Scan(&svc, &kind); err != nil {
			return nil, s.wrap("list profiled services", err)
		}
		if n := len(out); n > 0 && out[n-1].Service == svc {
			out[n-1].Kinds = append(out[n-1].Kinds, kind)
			continue
		}
		out = append(out, storage.ProfileService{Service: svc, Kinds: []string{kind}})
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap("list profiled services", err)
	}
	return out, nil
}

// DiskBytes reports the bytes of the store's file and WAL.
func (s *ProfileStore) DiskBytes() int64 {
	var n int64
	for _, name := range []string{"profiles.duckdb", "profiles.duckdb.wal"} {
		if fi, err := os.Stat(filepath.Join(s.opts.Dir, name)); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// Close stops the retention loop and closes the database.
func (s *ProfileStore) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.stop()
	<-s.done
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("embedded: close profile store: %w", err)
	}
	return nil
}

func (s *ProfileStore) wrap(what string, err error) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed || errors.Is(err, sql.ErrConnDone) {
		return fmt.Errorf("embedded: %s: %w", what, storage.ErrClosed)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("embedded: %s: %w", what, err)
	}
	return fmt.Errorf("embedded: %s: %w: %w", what, storage.ErrUnavailable, err)
}

// cleanLabel keeps the separators out of a label name or value, so that
// one label cannot pose as two.
func cleanLabel(s string) string {
	if !strings.ContainsAny(s, labelSep+"=") {
		return s
	}
	return strings.NewReplacer(labelSep, " ", "=", "_").Replace(s)
}

func encodeProfileLabels(labels map[string]string) string {
	var sb strings.Builder
	sb.WriteString(labelSep)
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		sb.WriteString(cleanLabel(k))
		sb.WriteByte('=')
		// Only the name has '=' replaced: the first '=' separates.
		sb.WriteString(strings.ReplaceAll(labels[k], labelSep, " "))
		sb.WriteString(labelSep)
	}
	return sb.String()
}

func decodeProfileLabels(s string) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Split(strings.Trim(s, labelSep), labelSep) {
		if k, v, ok := strings.Cut(kv, "="); ok {
			out[k] = v
		}
	}
	return out
}

func encodeSpanIDs(ids []string) string {
	var sb strings.Builder
	sb.WriteString(spanSep)
	for _, id := range ids {
		if id == "" || strings.Contains(id, spanSep) {
			continue
		}
		sb.WriteString(id)
		sb.WriteString(spanSep)
	}
	return sb.String()
}

func decodeSpanIDs(s string) []string {
	s = strings.Trim(s, spanSep)
	if s == "" {
		return nil
	}
	return strings.Split(s, spanSep)
}
