package clickhouse

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/pprofrows"
)

// ProfileStore keeps profiles in ClickHouse in the embedded store's
// layout: profile_samples (a row per sample and sample type), the stacks
// they name once per day (profile_stacks, a ReplacingMergeTree: writers
// on several nodes may each insert a stack, reads take any copy) and
// profiles (a row per upload). Every table is partitioned by day, so
// retention drops whole days, samples and stacks together. It implements
// storage.ProfileStore.
type ProfileStore struct {
	c *Client

	mu sync.Mutex
	// seen are the stacks this process wrote, per day.
	seen map[int64]map[uint64]struct{}
}

var _ storage.ProfileStore = (*ProfileStore)(nil)

var profileTables = []struct{ name, columns, engine, order string }{
	{"profiles", "day Date, service String, kind String, start_ns Int64, end_ns Int64, labels String",
		"MergeTree", "(service, kind, end_ns)"},
	{"profile_stacks", "day Date, stack_id UInt64, frames String",
		"ReplacingMergeTree", "(stack_id)"},
	{"profile_samples", "day Date, service String, kind String, sample_type String, start_ns Int64, end_ns Int64, labels String, span_id String, stack_id UInt64, value Int64",
		"MergeTree", "(service, kind, sample_type, end_ns)"},
}

// OpenProfiles creates the profile tables on c's server (or on every
// shard, with Distributed tables over them) and drops the days past
// retention (storage.DefaultRetention when zero).
func OpenProfiles(ctx context.Context, c *Client, retention time.Duration) (*ProfileStore, error) {
	if retention <= 0 {
		retention = storage.DefaultRetention
	}
	for _, t := range profileTables {
		ddl := fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (%s) ENGINE = %s PARTITION BY day ORDER BY %s",
			c.LocalTable(t.name), t.columns, t.engine, t.order)
		if err := c.ExecEverywhere(ctx, ddl); err != nil {
			return nil, err
		}
		if c.Cluster != "" {
			if err := c.Conn.Exec(ctx, fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s AS %s ENGINE = Distributed(%s, %s, %s_local, rand())",
				c.Table(t.name), c.LocalTable(t.name), c.Cluster, c.Database, t.name)); err != nil {
				return nil, classify(ctx, "create "+t.name, err)
			}
		}
	}
	s := &ProfileStore{c: c, seen: map[int64]map[uint64]struct{}{}}
	if _, err := s.DropBefore(ctx, time.Now().Add(-retention)); err != nil {
		return nil, err
	}
	return s, nil
}

// DropBefore drops the whole days before t's; it returns how many. It is
// a storage.Retainer: the server runs it with the other stores'.
func (s *ProfileStore) DropBefore(ctx context.Context, t time.Time) (int, error) {
	cut := floorDiv(t.UnixNano(), dayNanos)
	tables := make([]string, len(profileTables))
	for i, tb := range profileTables {
		tables[i] = tb.name
	}
	n, err := dropDaysBefore(ctx, s.c, tables, cut)
	if err != nil {
		return n, classify(ctx, "drop profile partitions", err)
	}
	s.mu.Lock()
	for d := range s.seen {
		if d < cut {
			delete(s.seen, d)
		}
	}
	s.mu.Unlock()
	return n, nil
}

// insert sends one batch into table.
func (s *ProfileStore) insert(ctx context.Context, table, columns string, fill func(driver.Batch) error) error {
	if s.c.Cluster != "" {
		ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_distributed_sync": 1}))
	}
	b, err := s.c.Conn.PrepareBatch(ctx, "INSERT INTO "+s.c.Table(table)+" ("+columns+")")
	if err != nil {
		return classify(ctx, "insert into "+table, err)
	}
	if err := fill(b); err != nil {
		_ = b.Abort()
		return fmt.Errorf("clickhouse: insert into %s: %w", table, err)
	}
	if err := b.Send(); err != nil {
		return classify(ctx, "insert into "+table, err)
	}
	return nil
}

// WriteProfiles stores profiles: stacks first, then samples, then the
// profile rows, so that a reader never meets a sample without its stack.
// A failed write may leave stacks or samples of it behind; the client
// retries the whole upload, and a retried profile counts twice (as
// ClickHouse keeps spans written twice).
func (s *ProfileStore) WriteProfiles(ctx context.Context, profiles []storage.Profile) error {
	type row struct {
		day                  time.Time
		p                    storage.Profile
		labels               string
		types                []string
		samples              []pprofrows.Sample
		ids                  []uint64
		startNS, endNS, dayN int64
	}
	var rows []row
	newStacks := map[int64]map[uint64]string{}
	s.mu.Lock()
	for _, p := range profiles {
		types, samples, err := pprofrows.Decompose(p.Data)
		if err != nil {
			s.mu.Unlock()
			return fmt.Errorf("clickhouse: profile of %s: %w", p.Service, err)
		}
		r := row{p: p, labels: pprofrows.EncodeLabels(p.Labels), types: types, samples: samples,
			startNS: p.Start.UnixNano(), endNS: p.End.UnixNano()}
		r.dayN = floorDiv(r.endNS, dayNanos)
		r.day = dayDate(r.dayN)
		var key strings.Builder
		for _, smp := range samples {
			key.Reset()
			pprofrows.EncodeFrames(&key, smp.Frames)
			id := pprofrows.StackID(key.String())
			r.ids = append(r.ids, id)
			if _, ok := s.seen[r.dayN][id]; ok {
				continue
			}
			if newStacks[r.dayN] == nil {
				newStacks[r.dayN] = map[uint64]string{}
			}
			newStacks[r.dayN][id] = key.String()
		}
		rows = append(rows, r)
	}
	s.mu.Unlock()
	if len(rows) == 0 {
		return nil
	}
	if len(newStacks) > 0 {
		err := s.insert(ctx, "profile_stacks", "day, stack_id, frames", func(b driver.Batch) error {
			for d, stacks := range newStacks {
				for id, frames := range stacks {
					if err := b.Append(dayDate(d), id, frames); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	err := s.insert(ctx, "profile_samples", "day, service, kind, sample_type, start_ns, end_ns, labels, span_id, stack_id, value", func(b driver.Batch) error {
		for _, r := range rows {
			for i, smp := range r.samples {
				for j, v := range smp.Values {
					if v == 0 {
						continue
					}
					if err := b.Append(r.day, r.p.Service, r.p.Kind, r.types[j], r.startNS, r.endNS, r.labels, smp.SpanID, r.ids[i], v); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	err = s.insert(ctx, "profiles", "day, service, kind, start_ns, end_ns, labels", func(b driver.Batch) error {
		for _, r := range rows {
			if err := b.Append(r.day, r.p.Service, r.p.Kind, r.startNS, r.endNS, r.labels); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	for d, stacks := range newStacks {
		if s.seen[d] == nil {
			s.seen[d] = map[uint64]struct{}{}
		}
		for id := range stacks {
			s.seen[d][id] = struct{}{}
		}
	}
	s.mu.Unlock()
	return nil
}

// MergeProfiles sums the selected samples by stack.
func (s *ProfileStore) MergeProfiles(ctx context.Context, q storage.ProfileQuery) (storage.MergedProfile, error) {
	var out storage.MergedProfile
	if q.Service == "" || q.Kind == "" || len(q.SampleTypes) == 0 {
		return out, fmt.Errorf("%w: a profile query needs a service, a kind and a sample type", storage.ErrInvalidQuery)
	}
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
		sb.WriteString(` AND position(labels, ?) > 0`)
		args = append(args, pprofrows.LabelFilter(k, q.Labels[k]))
	}
	if q.SpanID != "" {
		sb.WriteString(` AND span_id = ?`)
		args = append(args, q.SpanID)
	}
	where := sb.String()
	sums := map[uint64]int64{}
	rows, err := s.c.Conn.Query(ctx, `SELECT stack_id, sum(value) AS v FROM `+s.c.Table("profile_samples")+` WHERE `+where+` GROUP BY stack_id`, args...)
	if err != nil {
		return out, classify(ctx, "merge profiles", err)
	}
	for rows.Next() {
		var (
			id uint64
			v  int64
		)
		if err := rows.Scan(&id, &v); err != nil {
			rows.Close()
			return out, classify(ctx, "merge profiles", err)
		}
		if v != 0 {
			sums[id] = v
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return out, classify(ctx, "merge profiles", err)
	}
	if len(sums) == 0 {
		return out, nil
	}
	// GLOBAL: over Distributed tables the subquery runs once, not on
	// every shard against every other.
	rows, err = s.c.Conn.Query(ctx, `SELECT stack_id, any(frames) FROM `+s.c.Table("profile_stacks")+
		` WHERE stack_id GLOBAL IN (SELECT stack_id FROM `+s.c.Table("profile_samples")+` WHERE `+where+`) GROUP BY stack_id`, args...)
	if err != nil {
		return out, classify(ctx, "read stacks", err)
	}
	for rows.Next() {
		var (
			id     uint64
			frames string
		)
		if err := rows.Scan(&id, &frames); err != nil {
			rows.Close()
			return out, classify(ctx, "read stacks", err)
		}
		if v, ok := sums[id]; ok {
			out.Stacks = append(out.Stacks, storage.ProfileStack{Frames: pprofrows.DecodeFrames(frames), Value: v})
			delete(sums, id)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return out, classify(ctx, "read stacks", err)
	}
	var n uint64
	if err := s.c.Conn.QueryRow(ctx, `SELECT uniqExact(start_ns, end_ns, labels) FROM `+s.c.Table("profile_samples")+` WHERE `+where, args...).Scan(&n); err != nil {
		return out, classify(ctx, "count merged profiles", err)
	}
	out.Profiles = int(n)
	return out, nil
}

// ProfileServices lists the services and kinds with profiles in the range.
func (s *ProfileStore) ProfileServices(ctx context.Context, start, end time.Time) ([]storage.ProfileService, error) {
	rows, err := s.c.Conn.Query(ctx, `SELECT DISTINCT service, kind FROM `+s.c.Table("profiles")+
		` WHERE end_ns >= ? AND start_ns <= ? ORDER BY service, kind`, start.UnixNano(), end.UnixNano())
	if err != nil {
		return nil, classify(ctx, "list profiled services", err)
	}
	defer rows.Close()
	var out []storage.ProfileService
	for rows.Next() {
		var svc, kind string
		if err := rows.Scan(&svc, &kind); err != nil {
			return nil, classify(ctx, "list profiled services", err)
		}
		if n := len(out); n > 0 && out[n-1].Service == svc {
			out[n-1].Kinds = append(out[n-1].Kinds, kind)
			continue
		}
		out = append(out, storage.ProfileService{Service: svc, Kinds: []string{kind}})
	}
	if err := rows.Err(); err != nil {
		return nil, classify(ctx, "list profiled services", err)
	}
	return out, nil
}

// Close does nothing: the client is the caller's.
func (s *ProfileStore) Close() error { return nil }
