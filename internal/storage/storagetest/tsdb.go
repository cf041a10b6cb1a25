package storagetest

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/tsdb"
)

// TSDBOptions configures OpenTSDB. The zero value is Prometheus's default
// TSDB.
type TSDBOptions struct {
	// LikeEmbedded turns on what the embedded store turns on beyond
	// Prometheus's defaults: a ten-minute out-of-order window and
	// exemplars.
	LikeEmbedded bool
	// Registerer receives the TSDB's own metrics; nil registers none.
	Registerer prometheus.Registerer
}

// OpenTSDB opens a real Prometheus TSDB in a new temporary directory for a
// test, closed when the test ends; failing to open or close it fails the
// test.
func OpenTSDB(t testing.TB, opts TSDBOptions) *tsdb.DB {
	t.Helper()
	to := tsdb.DefaultOptions()
	if opts.LikeEmbedded {
		to.OutOfOrderTimeWindow = (10 * time.Minute).Milliseconds()
		to.EnableExemplarStorage = true
		to.MaxExemplars = 1000
	}
	db, err := tsdb.Open(t.TempDir(), nil, opts.Registerer, to, nil)
	if err != nil {
		t.Fatalf("open tsdb: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("close tsdb: %v", err)
		}
	})
	return db
}
