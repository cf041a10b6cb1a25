package clickhouse

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/clickhouse/chtest"
	"github.com/vigil-observability/vigil/internal/storage/storagetest"
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

// A shard's connection is the pool's with another address: every option of
// the DSN reaches every shard.
func TestShardOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		dsn  string
		want func(t *testing.T, o *clickhouse.Options)
	}{
		{"credentials", "clickhouse://vigil:s%40cret@first:9000/db", func(t *testing.T, o *clickhouse.Options) {
			if o.Auth.Username != "vigil" || o.Auth.Password != "s@cret" || o.Auth.Database != "db" {
				t.Errorf("auth %+v, want vigil, s@cret, db", o.Auth)
			}
		}},
		{"tls", "clickhouse://first:9440/db?secure=true&skip_verify=true&tls_server_name=ch.example", func(t *testing.T, o *clickhouse.Options) {
			if o.TLS == nil || !o.TLS.InsecureSkipVerify || o.TLS.ServerName != "ch.example" {
				t.Errorf("tls %+v, want skip_verify and server name ch.example", o.TLS)
			}
		}},
		{"timeouts", "clickhouse://first:9000/db?dial_timeout=3s&read_timeout=7s", func(t *testing.T, o *clickhouse.Options) {
			if o.DialTimeout != 3*time.Second || o.ReadTimeout != 7*time.Second {
				t.Errorf("dial %v, read %v; want 3s, 7s", o.DialTimeout, o.ReadTimeout)
			}
		}},
		{"settings and compression", "clickhouse://first:9000/db?max_execution_time=60&compress=lz4", func(t *testing.T, o *clickhouse.Options) {
			if fmt.Sprint(o.Settings["max_execution_time"]) != "60" {
				t.Errorf("settings %v, want max_execution_time=60", o.Settings)
			}
			if o.Compression == nil || o.Compression.Method != clickhouse.CompressionLZ4 {
				t.Errorf("compression %+v, want lz4", o.Compression)
			}
		}},
		{"http dsn", "http://vigil:pw@first:8123/db", func(t *testing.T, o *clickhouse.Options) {
			if o.Protocol != clickhouse.Native || o.Auth.Password != "pw" {
				t.Errorf("protocol %v, password %q; want native (system.clusters lists native ports), pw", o.Protocol, o.Auth.Password)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, err := clickhouse.ParseDSN(tc.dsn)
			if err != nil {
				t.Fatal(err)
			}
			o := shardOptions(base, "second:9001")
			if !slices.Equal(o.Addr, []string{"second:9001"}) {
				t.Errorf("addr %v, want second:9001", o.Addr)
			}
			if !slices.Equal(base.Addr, []string{"first:" + strings.Split(base.Addr[0], ":")[1]}) {
				t.Errorf("the pool's options changed: addr %v", base.Addr)
			}
			tc.want(t, o)
		})
	}
}

// A cluster whose servers want a password works on every shard: the DSN's
// credentials reach the connections vigil opens to each shard (to create
// tables, to drop old partitions), not only its pool.
func TestClusterWithPassword(t *testing.T) {
	cl := chtest.StartClusterWith(t, chtest.Options{Shards: 2, User: "vigil", Password: "s3cret"})
	ctx := t.Context()
	for _, srv := range cl {
		if c, err := Connect(ctx, Options{DSN: "clickhouse://" + srv.TCPAddr + "/default"}); err == nil {
			c.Close()
			t.Fatalf("shard %s let a connection without credentials in", srv.TCPAddr)
		}
	}
	c, err := Connect(ctx, Options{DSN: cl[0].DSN("authdb"), Cluster: chtest.ClusterName})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sl, err := OpenSpanLogs(ctx, c, SpanLogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sl.Close()
	ms, err := OpenMetrics(ctx, c, MetricsOptions{})
	if err != nil {
		t.Fatal(err)
	}

	base := storagetest.Base(time.Now())
	if err := sl.WriteTraces(ctx, storagetest.LoadTraces(t, "traces_rich.json", base)); err != nil {
		t.Fatal(err)
	}
	logs := storagetest.LoadLogs(t, "logs.json", base)
	if err := sl.WriteLogs(ctx, logs); err != nil {
		t.Fatal(err)
	}
	var series []labels.Labels
	for i := range 50 {
		series = append(series, labels.FromStrings("__name__", "authed", "i", fmt.Sprint(i)))
	}
	at := time.Now().Add(-time.Minute).Truncate(time.Second)
	if err := appendMetricFloats(t, ms, series, at.UnixMilli()); err != nil {
		t.Fatal(err)
	}

	if _, err := sl.GetTrace(ctx, storagetest.RichTraceID); err != nil {
		t.Errorf("GetTrace: %v", err)
	}
	n := 0
	for _, err := range sl.FindLogs(ctx, storage.LogQuery{Limit: 1000}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if want := logs.LogRecordCount(); n != want {
		t.Errorf("%d logs read back, want %d", n, want)
	}
	if got, want := queryMetricVector(t, ms, `count(authed)`, at), fmt.Sprintf("{} => 50 @[%d]", at.UnixMilli()); !slices.Equal(got, []string{want}) {
		t.Errorf("count(authed) = %q, want %q", got, want)
	}
	// Both shards hold rows, so reads gathered from both.
	for _, srv := range cl {
		sc, err := Connect(ctx, Options{DSN: srv.DSN("default"), Database: "probe"})
		if err != nil {
			t.Fatal(err)
		}
		var rows uint64
		err = sc.Conn.QueryRow(ctx, "SELECT sum(rows) FROM system.parts WHERE active AND database = 'authdb'").Scan(&rows)
		sc.Close()
		if err != nil || rows == 0 {
			t.Errorf("shard %s holds %d rows (%v), want some", srv.TCPAddr, rows, err)
		}
	}
	// Retention connects to each shard too.
	if _, err := sl.DropBefore(ctx, base.Add(-72*time.Hour)); err != nil {
		t.Errorf("span and log DropBefore: %v", err)
	}
	if _, err := ms.DropBefore(ctx, base.Add(-72*time.Hour)); err != nil {
		t.Errorf("metric DropBefore: %v", err)
	}
}
