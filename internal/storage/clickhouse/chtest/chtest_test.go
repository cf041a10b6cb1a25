package chtest

import (
	"context"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"
)

func open(t *testing.T, s *Server) clickhouse.Conn {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{s.TCPAddr}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// Two servers form one cluster of two shards: a Distributed table over a
// local table on each sees the rows of both, and a restart keeps them.
func TestCluster(t *testing.T) {
	ctx := context.Background()
	servers := StartCluster(t, 2)
	for i, s := range servers {
		conn := open(t, s)
		if err := conn.Exec(ctx, "CREATE TABLE t_local (n UInt64) ENGINE = MergeTree ORDER BY n"); err != nil {
			t.Fatal(err)
		}
		if err := conn.Exec(ctx, "CREATE TABLE t (n UInt64) ENGINE = Distributed("+ClusterName+", default, t_local, n)"); err != nil {
			t.Fatal(err)
		}
		// Debian's 18.16 server takes rows as blocks, with the columns
		// named; an INSERT with bound parameters never completes there.
		b, err := conn.PrepareBatch(ctx, "INSERT INTO t_local (n)")
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Append(uint64(i + 1)); err != nil {
			t.Fatal(err)
		}
		if err := b.Send(); err != nil {
			t.Fatal(err)
		}
	}
	var sum uint64
	if err := open(t, servers[0]).QueryRow(ctx, "SELECT sum(n) FROM t").Scan(&sum); err != nil {
		t.Fatal(err)
	}
	if sum != 3 {
		t.Fatalf("sum over the Distributed table = %d, want 3 (one row per shard)", sum)
	}
	servers[1].Restart()
	if err := open(t, servers[1]).QueryRow(ctx, "SELECT sum(n) FROM t_local").Scan(&sum); err != nil {
		t.Fatal(err)
	}
	if sum != 2 {
		t.Fatalf("after a restart the shard holds %d, want 2", sum)
	}
}
