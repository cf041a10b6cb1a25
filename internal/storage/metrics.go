package storage

import (
	"context"

	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/index"
)

// MetricStore is what every metric backend provides: ingest paths and
// rules append, PromQL and the Prometheus API read. Both halves are
// Prometheus's own interfaces and may be used from several goroutines at
// once.
//
// A backend that offers more (see MetricCapabilities) says so with a
// method Capabilities() MetricCapabilities; CapabilitiesOf finds it.
type MetricStore interface {
	promstorage.AppendableV2
	promstorage.SampleAndChunkQueryable
}

// MetricHead is the in-memory head of a TSDB-like store: the series limit
// counts and creates series in it, the doctor's cardinality check reads its
// postings. *tsdb.Head satisfies it.
type MetricHead interface {
	NumSeries() uint64
	Appender(context.Context) promstorage.Appender
	PostingsCardinalityStats(statsByLabelName string, limit int) *index.PostingsStats
}

// TSDBAdmin is the status and admin surface of a Prometheus TSDB, in the
// shape Prometheus's API handler takes (web/api/v1.TSDBAdminStats): head
// statistics, blocks, WAL replay progress, series deletion, tombstone
// cleaning and snapshots.
type TSDBAdmin interface {
	CleanTombstones() error
	Delete(ctx context.Context, mint, maxt int64, ms ...*labels.Matcher) error
	Snapshot(dir string, withHead bool) error
	Stats(statsByLabelName string, limit int) (*tsdb.Stats, error)
	WALReplayStatus() (tsdb.WALReplayStatus, error)
	BlockMetas() ([]tsdb.BlockMeta, error)
}

// MetricCapabilities are what only some metric backends offer. A field the
// backend lacks is an untyped nil, so consumers that take the capability
// as their own interface see nil and turn the feature off (a *tsdb.DB held
// in an interface would be non-nil even when the pointer is nil).
type MetricCapabilities struct {
	// Exemplars serves /api/v1/query_exemplars.
	Exemplars promstorage.ExemplarQueryable
	// Head feeds the series limit and the doctor's cardinality check.
	Head MetricHead
	// Admin backs the Prometheus API's TSDB status pages and, when turned
	// on, its admin endpoints.
	Admin TSDBAdmin
}

// CapabilitiesOf returns what m offers beyond MetricStore: the zero value
// (every capability absent) unless m has a Capabilities method. Callers
// resolve it once, when the store opens.
func CapabilitiesOf(m MetricStore) MetricCapabilities {
	if c, ok := m.(interface{ Capabilities() MetricCapabilities }); ok {
		return c.Capabilities()
	}
	return MetricCapabilities{}
}

// TSDBCapabilities are the capabilities of a Prometheus TSDB: its exemplar
// buffer, its head and its status and admin surface. db must not be nil.
func TSDBCapabilities(db *tsdb.DB) MetricCapabilities {
	return MetricCapabilities{Exemplars: db, Head: db.Head(), Admin: tsdbAdmin{db: db}}
}

// tsdbAdmin adapts a *tsdb.DB to TSDBAdmin.
type tsdbAdmin struct{ db *tsdb.DB }

func (a tsdbAdmin) CleanTombstones() error { return a.db.CleanTombstones() }
func (a tsdbAdmin) Delete(ctx context.Context, mint, maxt int64, ms ...*labels.Matcher) error {
	return a.db.Delete(ctx, mint, maxt, ms...)
}
func (a tsdbAdmin) Snapshot(dir string, withHead bool) error { return a.db.Snapshot(dir, withHead) }
func (a tsdbAdmin) Stats(statsByLabelName string, limit int) (*tsdb.Stats, error) {
	return a.db.Head().Stats(statsByLabelName, limit), nil
}
func (a tsdbAdmin) BlockMetas() ([]tsdb.BlockMeta, error) { return a.db.BlockMetas(), nil }

// WALReplayStatus reports the replay as finished: the API is served only
// once the store is open, which is after the WAL was replayed.
func (a tsdbAdmin) WALReplayStatus() (tsdb.WALReplayStatus, error) {
	return tsdb.WALReplayStatus{}, nil
}
