package clickhouse

import (
	"testing"

	"github.com/vigil-observability/vigil/internal/storage/clickhouse/chtest"
)

func TestFeaturesOf(t *testing.T) {
	for _, tc := range []struct {
		version string
		want    Features
	}{
		{"18.16.1", Features{Version: "18.16.1"}},
		{"19.6.2.11", Features{Version: "19.6.2.11", LowCardinality: true, Codecs: true, TTL: true}},
		{"24.8.4.13", Features{Version: "24.8.4.13", LowCardinality: true, Codecs: true, TTL: true, SkipIndexes: true}},
		{"weird", Features{Version: "weird", LowCardinality: true, Codecs: true, TTL: true, SkipIndexes: true}},
	} {
		if got := featuresOf(tc.version); got != tc.want {
			t.Errorf("featuresOf(%q) = %+v, want %+v", tc.version, got, tc.want)
		}
	}
}

func TestConnect(t *testing.T) {
	srv := chtest.Start(t)
	c, err := Connect(t.Context(), Options{DSN: srv.DSN("metrics_db")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Database != "metrics_db" || c.Features.Version == "" {
		t.Fatalf("client %+v", c)
	}
	var n uint64
	if err := c.Conn.QueryRow(t.Context(), "SELECT count() FROM system.databases WHERE name = 'metrics_db'").Scan(&n); err != nil || n != 1 {
		t.Fatalf("database not created: %d, %v", n, err)
	}
	if _, err := Connect(t.Context(), Options{DSN: srv.DSN("x"), Database: "bad-name"}); err == nil {
		t.Error("a database name with a dash was accepted")
	}
	cl := chtest.StartCluster(t, 2)
	c2, err := Connect(t.Context(), Options{DSN: cl[0].DSN(""), Cluster: chtest.ClusterName})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	for _, s := range cl {
		c3, err := Connect(t.Context(), Options{DSN: s.DSN("default"), Database: "probe"})
		if err != nil {
			t.Fatal(err)
		}
		if err := c3.Conn.QueryRow(t.Context(), "SELECT count() FROM system.databases WHERE name = 'vigil'").Scan(&n); err != nil || n != 1 {
			t.Errorf("shard %s: database vigil not created: %d, %v", s.TCPAddr, n, err)
		}
		c3.Close()
	}
}
