package clickhouse

import (
	"fmt"
	"sync/atomic"
	"testing"

	vstorage "github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/clickhouse/chtest"
	"github.com/vigil-observability/vigil/internal/storage/storagetest"
)

var metricDBSeq atomic.Int64

// openMetricStore opens a store in a database of its own on srv (in the
// cluster of srv when cluster is set).
func openMetricStore(t testing.TB, srv *chtest.Server, cluster string, opts MetricsOptions) (*MetricStore, *Client) {
	t.Helper()
	db := fmt.Sprintf("metrics_%d", metricDBSeq.Add(1))
	c, err := Connect(t.Context(), Options{DSN: srv.DSN(db), Cluster: cluster})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s, err := OpenMetrics(t.Context(), c, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

func TestMetricStoreConformance(t *testing.T) {
	srv := chtest.Start(t)
	storagetest.RunMetricStore(t, func(t *testing.T) vstorage.MetricStore {
		s, _ := openMetricStore(t, srv, "", MetricsOptions{})
		return s
	})
}

func TestMetricStoreConformanceCluster(t *testing.T) {
	srv := chtest.StartCluster(t, 2)
	storagetest.RunMetricStore(t, func(t *testing.T) vstorage.MetricStore {
		s, _ := openMetricStore(t, srv[0], chtest.ClusterName, MetricsOptions{})
		return s
	})
}
