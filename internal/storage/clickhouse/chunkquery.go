package clickhouse

import (
	"context"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// ChunkQuerier answers chunk queries by encoding the series as they are
// read. The Prometheus API's remote read asks for chunks; a store that
// keeps samples, as ClickHouse does, has none to hand over.
func (m *MetricStore) ChunkQuerier(mint, maxt int64) (storage.ChunkQuerier, error) {
	return chunkQueryable{m}.ChunkQuerier(mint, maxt)
}

type chunkQueryable struct{ storage.Queryable }

func (c chunkQueryable) ChunkQuerier(mint, maxt int64) (storage.ChunkQuerier, error) {
	q, err := c.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return chunkQuerier{q}, nil
}

type chunkQuerier struct{ storage.Querier }

func (c chunkQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.ChunkSeriesSet {
	return storage.NewSeriesSetToChunkSet(c.Querier.Select(ctx, sortSeries, hints, ms...))
}
