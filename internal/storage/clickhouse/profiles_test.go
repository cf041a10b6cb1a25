package clickhouse

import (
	"context"
	"fmt"
	"testing"

	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/clickhouse/chtest"
	"github.com/vigil-observability/vigil/internal/storage/storagetest"
)

func openProfiles(t *testing.T, srv *chtest.Server, cluster string) storage.ProfileStore {
	c, err := Connect(context.Background(), Options{DSN: srv.DSN(fmt.Sprintf("pr%d", testDBSeq.Add(1))), Cluster: cluster})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s, err := OpenProfiles(context.Background(), c, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestProfileConformance(t *testing.T) {
	srv := chtest.Start(t)
	storagetest.RunProfileStore(t, func(t *testing.T) storage.ProfileStore { return openProfiles(t, srv, "") })
}

// Over two shards, through Distributed tables.
func TestProfileConformanceCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster suite in -short mode")
	}
	cl := chtest.StartCluster(t, 2)
	storagetest.RunProfileStore(t, func(t *testing.T) storage.ProfileStore { return openProfiles(t, cl[0], chtest.ClusterName) })
}
