package embedded

import (
	"testing"

	"github.com/vigil-observability/vigil/internal/storage"

	"github.com/vigil-observability/vigil/internal/storage/storagetest"
)

func TestMetricStoreConformance(t *testing.T) {
	storagetest.RunMetricStore(t, func(t *testing.T) storage.MetricStore {
		db, err := OpenMetrics(MetricsOptions{Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		return db
	})
}
