package embedded

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/pprofrows"
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
	// DiskReserve is the free space below which writes are refused with
	// ErrDiskFull (0: DiskReserve(Dir); negative: no check), as for spans
	// and logs: DuckDB does not survive a commit failing on ENOSPC.
	DiskReserve int64
	// Registerer receives vigil_storage_bytes{store="profiles"} and
	// vigil_storage_write_failures_total{store="profiles"}; nil: not
	// registered.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	Now        func() time.Time
	// MaxCachedStacks bounds the ids of stored stacks kept in memory to
	// insert each stack once (DefaultMaxCachedStacks when zero): past it,
	// a write asks the database which of its stacks are new, so a flood
	// of distinct stacks costs queries, not memory.
	MaxCachedStacks int
}

// DefaultMaxCachedStacks is about 40 MiB of stack ids.
const DefaultMaxCachedStacks = 1 << 20

// ProfileStore keeps profiles normalised in DuckDB: each distinct stack
// once (profile_stacks), one row per sample and sample type with its
// value, its span id and its profile's service, kind, range and labels
// (profile_samples), and one row per profile (profiles) for listing and
// retention. A merged view is one aggregation by stack; docs/performance.md
// ("Profiles") has the measurement that chose this over pprof blobs. It
// implements storage.ProfileStore.
type ProfileStore struct {
	opts ProfileOptions
	log  *slog.Logger
	db   *sql.DB

	// writeMu makes writes one at a time, so that a stack new to the
	// store is inserted once; stackIDs are stacks committed, all of them
	// while allStacks, else at most MaxCachedStacks of them.
	writeMu   sync.Mutex
	stackIDs  map[uint64]struct{}
	allStacks bool

	gauge prometheus.Collector
	guard *diskGuard

	mu     sync.Mutex
	closed bool
	stop   context.CancelFunc
	done   chan struct{}
}

var _ storage.ProfileStore = (*ProfileStore)(nil)

var profileSchema = []string{
	`CREATE TABLE IF NOT EXISTS profiles (
	service  VARCHAR NOT NULL,
	kind     VARCHAR NOT NULL,
	start_ns BIGINT NOT NULL,
	end_ns   BIGINT NOT NULL,
	labels   VARCHAR NOT NULL
)`,
	`CREATE TABLE IF NOT EXISTS profile_stacks (
	stack_id UBIGINT NOT NULL,
	frames   VARCHAR NOT NULL
)`,
	`CREATE TABLE IF NOT EXISTS profile_samples (
	service     VARCHAR NOT NULL,
	kind        VARCHAR NOT NULL,
	sample_type VARCHAR NOT NULL,
	start_ns    BIGINT NOT NULL,
	end_ns      BIGINT NOT NULL,
	labels      VARCHAR NOT NULL,
	span_id     VARCHAR NOT NULL,
	stack_id    UBIGINT NOT NULL,
	value       BIGINT NOT NULL
)`,
}

// Labels and stacks are kept as pprofrows encodes them.

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
	s := &ProfileStore{opts: opts, log: log, db: sql.OpenDB(connector), guard: newDiskGuard("profiles", opts.Dir, opts.DiskReserve, log)}
	for _, q := range profileSchema {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			_ = s.db.Close()
			return nil, fmt.Errorf("embedded: create profile tables: %w", err)
		}
	}
	if _, err := s.DropBefore(ctx, s.opts.Now().Add(-opts.Retention)); err != nil {
		_ = s.db.Close()
		return nil, err
	}
	if err := s.loadStackIDs(ctx); err != nil {
		_ = s.db.Close()
		return nil, err
	}
	if opts.Registerer != nil {
		g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vigil_storage_bytes", Help: StorageBytesHelp,
			ConstLabels: prometheus.Labels{"store": "profiles"},
		}, func() float64 { return float64(s.DiskBytes()) })
		if err := opts.Registerer.Register(g); err != nil {
			_ = s.db.Close()
			return nil, fmt.Errorf("embedded: register profile store metrics: %w", err)
		}
		if err := opts.Registerer.Register(s.guard.failures); err != nil {
			opts.Registerer.Unregister(g)
			_ = s.db.Close()
			return nil, fmt.Errorf("embedded: register profile store metrics: %w", err)
		}
		s.gauge = g
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
// many, then the stacks no sample uses any more, and checkpoints so that
// the space is reused.
func (s *ProfileStore) DropBefore(ctx context.Context, cut time.Time) (int64, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	res, err := s.db.ExecContext(ctx, `DELETE FROM profiles WHERE end_ns < ?`, cut.UnixNano())
	if err != nil {
		return 0, s.wrap("drop expired profiles", err)
	}
	n, _ := res.RowsAffected()
	if n == 0 {
		return 0, nil
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM profile_samples WHERE end_ns < ?`, cut.UnixNano()); err != nil {
		return n, s.wrap("drop expired profile samples", err)
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM profile_stacks WHERE stack_id NOT IN (SELECT DISTINCT stack_id FROM profile_samples)`); err != nil {
		return n, s.wrap("drop unused stacks", err)
	}
	if s.stackIDs != nil {
		if err := s.loadStackIDs(ctx); err != nil {
			return n, err
		}
	}
	if _, err := s.db.ExecContext(ctx, `CHECKPOINT`); err != nil {
		return n, s.wrap("checkpoint after retention", err)
	}
	return n, nil
}

// loadStackIDs reads the ids of the stored stacks.
func (s *ProfileStore) loadStackIDs(ctx context.Context) error {
	rows, err := s.db.QueryContext(ctx, `SELECT stack_id FROM profile_stacks`)
	if err != nil {
		return s.wrap("read stack ids", err)
	}
	defer func() { _ = rows.Close() }()
	ids := map[uint64]struct{}{}
	all := true
	for rows.Next() {
		if len(ids) >= s.maxCachedStacks() {
			all = false
			break
		}
		var id uint64
		if err := rows.Scan(&id); err != nil {
			return s.wrap("read stack ids", err)
		}
		ids[id] = struct{}{}
	}
	if err := rows.Err(); err != nil {
		return s.wrap("read stack ids", err)
	}
	s.stackIDs, s.allStacks = ids, all
	return nil
}

func (s *ProfileStore) maxCachedStacks() int {
	if s.opts.MaxCachedStacks > 0 {
		return s.opts.MaxCachedStacks
	}
	return DefaultMaxCachedStacks
}

// dropStored removes from stacks those the database already holds: the
// stacks the cache does not know, once it no longer holds them all.
func (s *ProfileStore) dropStored(ctx context.Context, conn *sql.Conn, stacks map[uint64]string) error {
	ids := slices.Collect(maps.Keys(stacks))
	const chunk = 1000
	var q strings.Builder
	for len(ids) > 0 {
		n := min(chunk, len(ids))
		// Numbers in the text: database/sql takes no uint64 above 2^63.
		q.Reset()
		q.WriteString(`SELECT stack_id FROM profile_stacks WHERE stack_id IN (`)
		for i, id := range ids[:n] {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteString(strconv.FormatUint(id, 10))
		}
		q.WriteString(")")
		ids = ids[n:]
		rows, err := conn.QueryContext(ctx, q.String())
		if err != nil {
			return s.wrap("look up stacks", err)
		}
		for rows.Next() {
			var id uint64
			if err := rows.Scan(&id); err != nil {
				_ = rows.Close()
				return s.wrap("look up stacks", err)
			}
			delete(stacks, id)
		}
		if err := rows.Close(); err != nil {
			return s.wrap("look up stacks", err)
		}
	}
	return nil
}

// WriteProfiles stores profiles in one transaction, durable (in DuckDB's
// WAL) when it returns nil. Below the disk reserve it refuses them with
// ErrDiskFull, writing nothing.
func (s *ProfileStore) WriteProfiles(ctx context.Context, profiles []storage.Profile) error {
	if len(profiles) == 0 {
		return nil
	}
	err := s.writeProfiles(ctx, profiles)
	if err != nil && !errors.Is(err, ErrDiskFull) && !errors.Is(err, storage.ErrInvalidProfile) && ctx.Err() == nil {
		s.guard.failed()
	}
	return err
}

func (s *ProfileStore) writeProfiles(ctx context.Context, profiles []storage.Profile) error {
	type decomposed struct {
		p       storage.Profile
		types   []string
		samples []pprofrows.Sample
	}
	var ds []decomposed
	for _, p := range profiles {
		types, samples, err := pprofrows.Decompose(p.Data)
		if err != nil {
			return fmt.Errorf("embedded: profile of %s: %w", p.Service, err)
		}
		ds = append(ds, decomposed{p, types, samples})
	}
	if err := s.guard.check(); err != nil {
		return err
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return s.wrap("profile write", err)
	}
	defer func() { _ = conn.Close() }()
	if _, err := conn.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
		return s.wrap("begin profile write", err)
	}
	committed := false
	defer func() {
		if !committed {
			if _, rerr := conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK"); rerr != nil {
				// A connection with a dangling transaction must not go back to the pool.
				_ = conn.Raw(func(any) error { return driver.ErrBadConn })
			}
		}
	}()
	newStacks := map[uint64]string{}
	for _, d := range ds {
		labels := pprofrows.EncodeLabels(d.p.Labels)
		start, end := d.p.Start.UnixNano(), d.p.End.UnixNano()
		if _, err := conn.ExecContext(ctx, `INSERT INTO profiles VALUES (?, ?, ?, ?, ?)`, d.p.Service, d.p.Kind, start, end, labels); err != nil {
			return s.wrap("write profile", err)
		}
		err := conn.Raw(func(dc any) error {
			a, err := duckdb.NewAppender(dc.(driver.Conn), "", "main", "profile_samples")
			if err != nil {
				return err
			}
			var key strings.Builder
			for _, smp := range d.samples {
				key.Reset()
				pprofrows.EncodeFrames(&key, smp.Frames)
				id := pprofrows.StackID(key.String())
				if _, ok := s.stackIDs[id]; !ok {
					if _, ok := newStacks[id]; !ok {
						newStacks[id] = key.String()
					}
				}
				for i, v := range smp.Values {
					if v == 0 {
						continue
					}
					if err := a.AppendRow(d.p.Service, d.p.Kind, d.types[i], start, end, labels, smp.SpanID, id, v); err != nil {
						_ = a.Close()
						return err
					}
				}
			}
			return a.Close()
		})
		if err != nil {
			return s.wrap("write profile samples", err)
		}
	}
	if len(newStacks) > 0 && !s.allStacks {
		if err := s.dropStored(ctx, conn, newStacks); err != nil {
			return err
		}
	}
	if len(newStacks) > 0 {
		err := conn.Raw(func(dc any) error {
			a, err := duckdb.NewAppender(dc.(driver.Conn), "", "main", "profile_stacks")
			if err != nil {
				return err
			}
			for id, frames := range newStacks {
				if err := a.AppendRow(id, frames); err != nil {
					_ = a.Close()
					return err
				}
			}
			return a.Close()
		})
		if err != nil {
			return s.wrap("write stacks", err)
		}
	}
	// The commit must not be cut short by a cancelled ctx.
	if _, err := conn.ExecContext(context.WithoutCancel(ctx), "COMMIT"); err != nil {
		return s.wrap("commit profiles", err)
	}
	committed = true
	for id := range newStacks {
		if len(s.stackIDs) >= s.maxCachedStacks() {
			s.allStacks = false
			break
		}
		s.stackIDs[id] = struct{}{}
	}
	return nil
}

// profileWhere is the filter of q over profile_samples, and its arguments.
func profileWhere(q storage.ProfileQuery) (string, []any) {
	var sb strings.Builder
	sb.WriteString(`service = ? AND kind = ? AND end_ns >= ? AND start_ns <= ? AND sample_type IN (`)
	args := []any{q.Service, q.Kind, q.Start.UnixNano(), q.End.UnixNano()}
	for i, t := range q.SampleTypes {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString("?")
		args = append(args, t)
	}
	sb.WriteString(")")
	for _, k := range slices.Sorted(maps.Keys(q.Labels)) {
		sb.WriteString(` AND contains(labels, ?)`)
		args = append(args, pprofrows.LabelFilter(k, q.Labels[k]))
	}
	if q.SpanID != "" {
		sb.WriteString(` AND span_id = ?`)
		args = append(args, q.SpanID)
	}
	return sb.String(), args
}

// MergeProfiles sums the selected samples by stack.
func (s *ProfileStore) MergeProfiles(ctx context.Context, q storage.ProfileQuery) (storage.MergedProfile, error) {
	var out storage.MergedProfile
	if q.Service == "" || q.Kind == "" || len(q.SampleTypes) == 0 {
		return out, fmt.Errorf("%w: a profile query needs a service, a kind and a sample type", storage.ErrInvalidQuery)
	}
	where, args := profileWhere(q)
	rows, err := s.db.QueryContext(ctx, `SELECT st.frames, m.v FROM (
		SELECT stack_id, sum(value) AS v FROM profile_samples WHERE `+where+` GROUP BY stack_id
	) m JOIN profile_stacks st USING (stack_id) WHERE m.v <> 0`, args...)
	if err != nil {
		return out, s.wrap("merge profiles", err)
	}
	defer func() { _ = rows.Close() }()
	for rows.Next() {
		var (
			frames string
			v      int64
		)
		if err := rows.Scan(&frames, &v); err != nil {
			return out, s.wrap("merge profiles", err)
		}
		out.Stacks = append(out.Stacks, storage.ProfileStack{Frames: pprofrows.DecodeFrames(frames), Value: v})
	}
	if err := rows.Err(); err != nil {
		return out, s.wrap("merge profiles", err)
	}
	if len(out.Stacks) == 0 {
		return out, nil
	}
	var n int64
	if err := s.db.QueryRowContext(ctx, `SELECT count(DISTINCT (start_ns, end_ns, labels)) FROM profile_samples WHERE `+where, args...).Scan(&n); err != nil {
		return out, s.wrap("count merged profiles", err)
	}
	out.Profiles = int(n)
	return out, nil
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
	if s.gauge != nil {
		s.opts.Registerer.Unregister(s.gauge)
		s.opts.Registerer.Unregister(s.guard.failures)
	}
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
