package storage_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"

	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/clickhouse"
	"github.com/vigil-observability/vigil/internal/storage/embedded"
)

// Capabilities are resolved once per backend: the embedded TSDB has them
// all, ClickHouse none, and an absent one is an untyped nil, so consumers
// that check for nil turn the feature off rather than call into a nil
// pointer.
func TestCapabilitiesOf(t *testing.T) {
	tests := []struct {
		name  string
		open  func(t *testing.T) storage.MetricStore
		wants bool // every capability present, or every one absent
	}{
		{"embedded", openEmbedded, true},
		// Which capabilities a store has depends on its type alone, so an
		// unconnected store answers for a connected one.
		{"clickhouse", func(*testing.T) storage.MetricStore { return new(clickhouse.MetricStore) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			caps := storage.CapabilitiesOf(tt.open(t))
			present := map[string]bool{
				"Exemplars": caps.Exemplars != nil,
				"Head":      caps.Head != nil,
				"Admin":     caps.Admin != nil,
			}
			for name, got := range present {
				if got != tt.wants {
					t.Errorf("%s present = %v, want %v", name, got, tt.wants)
				}
			}
		})
	}
}

// The embedded store's capabilities are live views of its TSDB, not
// copies taken when they were resolved.
func TestTSDBCapabilitiesReadTheStore(t *testing.T) {
	m := openEmbedded(t)
	caps := storage.CapabilitiesOf(m)
	app := m.AppenderV2(context.Background())
	if _, err := app.Append(0, labels.FromStrings("__name__", "up", "job", "a"), 0, time.Now().UnixMilli(), 1, nil, nil, promstorage.AOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	if n := caps.Head.NumSeries(); n != 1 {
		t.Errorf("Head.NumSeries = %d, want 1", n)
	}
	stats, err := caps.Admin.Stats(model.MetricNameLabel, 10)
	if err != nil {
		t.Fatal(err)
	}
	if stats.NumSeries != 1 {
		t.Errorf("Admin.Stats().NumSeries = %d, want 1", stats.NumSeries)
	}
	if _, err := caps.Exemplars.ExemplarQuerier(context.Background()); err != nil {
		t.Errorf("ExemplarQuerier: %v", err)
	}
}

func openEmbedded(t *testing.T) storage.MetricStore {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tsdb")
	db, err := embedded.OpenMetrics(embedded.MetricsOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	m, err := embedded.GuardMetrics(db, embedded.GuardMetricsOptions{Dir: dir, Reserve: -1})
	if err != nil {
		t.Fatal(err)
	}
	return m
}
