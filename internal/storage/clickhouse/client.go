// Package clickhouse stores spans, logs and metrics in ClickHouse, for when
// one machine is not enough: several vigil processes ingest into and query
// one ClickHouse (a single server, or a cluster of shards behind
// Distributed tables). It implements the same interfaces as the embedded
// store and passes the same conformance suite.
//
// The schema adapts to the server: modern servers get LowCardinality
// columns, compression codecs, TTL and skip indexes; Debian's 18.16 package
// has none of them, so there retention drops whole day partitions and
// lookups lean on the sort keys alone.
package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/vigil-observability/vigil/internal/storage"
)

// Options says where the store lives.
type Options struct {
	// DSN is a clickhouse-go v2 DSN for the native protocol, e.g.
	// clickhouse://host:9000/db?dial_timeout=2s.
	DSN string
	// Database holds vigil's tables; it overrides the DSN's database and is
	// created when missing ("vigil" if both are empty).
	Database string
	// Cluster, when set, is a cluster of the server's remote_servers: each
	// table is created on every shard, and vigil reads and writes through
	// Distributed tables over them.
	Cluster string
	Logger  *slog.Logger
}

// Features are what the connected server can do.
type Features struct {
	// Version is the server's version, e.g. "18.16.1".
	Version string
	// LowCardinality columns (GA in 19.x; 18.x needs an experimental
	// setting, which vigil does not rely on).
	LowCardinality bool
	// Codecs are per-column compression codecs (CODEC(ZSTD), Delta...).
	Codecs bool
	// TTL expires rows and parts by time.
	TTL bool
	// SkipIndexes are data skipping indexes (bloom_filter, tokenbf_v1...).
	SkipIndexes bool
}

// featuresOf derives Features from a version string; unknown versions count
// as modern.
func featuresOf(version string) Features {
	f := Features{Version: version}
	major, minor := versionParts(version)
	atLeast := func(ma, mi int) bool { return major > ma || (major == ma && minor >= mi) }
	f.LowCardinality = atLeast(19, 1)
	f.Codecs = atLeast(19, 1)
	f.TTL = atLeast(19, 6)
	f.SkipIndexes = atLeast(20, 1)
	return f
}

var versionRE = regexp.MustCompile(`^(\d+)\.(\d+)`)

func versionParts(v string) (major, minor int) {
	m := versionRE.FindStringSubmatch(v)
	if m == nil {
		return 1 << 30, 0
	}
	major, _ = strconv.Atoi(m[1])
	minor, _ = strconv.Atoi(m[2])
	return major, minor
}

// Client is a connection pool to ClickHouse with what vigil learnt about
// the server. The span, log and metric stores share one.
type Client struct {
	Conn     driver.Conn
	Database string
	Cluster  string
	Features Features
	Logger   *slog.Logger

	// opts are the options the pool was opened with; connections to single
	// shards derive theirs from them (see shardOptions).
	opts *clickhouse.Options
}

// Connect opens the pool, learns the server's version and creates the
// database. It fails when the server cannot be reached: vigil does not start
// against a store it cannot see (later outages are retried per write).
func Connect(ctx context.Context, opts Options) (*Client, error) {
	if opts.DSN == "" {
		return nil, errors.New("clickhouse: no dsn")
	}
	co, err := clickhouse.ParseDSN(opts.DSN)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: dsn: %w", err)
	}
	db := opts.Database
	if db == "" {
		db = co.Auth.Database
	}
	if db == "" || db == "default" && opts.Database == "" {
		db = "vigil"
	}
	if !identRE.MatchString(db) {
		return nil, fmt.Errorf("clickhouse: database name %q: use letters, digits and underscores", db)
	}
	// Tables are named with their database, so the connection's own
	// default database stays "default" (which always exists).
	co.Auth.Database = "default"
	if co.DialTimeout == 0 {
		co.DialTimeout = 5 * time.Second
	}
	conn, err := clickhouse.Open(co)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: open: %w", err)
	}
	c := &Client{Conn: conn, Database: db, Cluster: opts.Cluster, Logger: opts.Logger, opts: co}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	var version string
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&version); err != nil {
		conn.Close()
		return nil, fmt.Errorf("clickhouse: %w: %w", storage.ErrUnavailable, err)
	}
	c.Features = featuresOf(version)
	if err := c.ExecEverywhere(ctx, "CREATE DATABASE IF NOT EXISTS "+db); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Close closes the pool.
func (c *Client) Close() error { return c.Conn.Close() }

// Table is the qualified name of a table vigil reads and writes: the
// Distributed table in a cluster, the table itself otherwise.
func (c *Client) Table(name string) string { return c.Database + "." + name }

// LocalTable is the qualified name of the table that holds the rows on each
// shard (name_local in a cluster).
func (c *Client) LocalTable(name string) string {
	if c.Cluster == "" {
		return c.Table(name)
	}
	return c.Database + "." + name + "_local"
}

// ExecEverywhere runs a DDL statement on every shard of the cluster, or on
// the one server. Distributed DDL (ON CLUSTER) needs ZooKeeper, which a
// sharded setup without replication does not have; vigil connects to each
// shard itself instead.
func (c *Client) ExecEverywhere(ctx context.Context, ddl string) error {
	if c.Cluster == "" {
		if err := c.Conn.Exec(ctx, ddl); err != nil {
			return fmt.Errorf("clickhouse: %s: %w", firstWords(ddl), err)
		}
		return nil
	}
	err := c.eachShard(ctx, func(conn driver.Conn) error { return conn.Exec(ctx, ddl) })
	if err != nil {
		return fmt.Errorf("clickhouse: %s: %w", firstWords(ddl), err)
	}
	return nil
}

// shardAddrs lists the native addresses of the cluster's shards (the first
// replica of each) from system.clusters.
func (c *Client) shardAddrs(ctx context.Context) ([]string, error) {
	rows, err := c.Conn.Query(ctx, "SELECT host_address, port FROM system.clusters WHERE cluster = '"+strings.ReplaceAll(c.Cluster, "'", "")+"' AND replica_num = 1 ORDER BY shard_num")
	if err != nil {
		return nil, fmt.Errorf("clickhouse: cluster %s: %w", c.Cluster, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var host string
		var port uint16
		if err := rows.Scan(&host, &port); err != nil {
			return nil, fmt.Errorf("clickhouse: cluster %s: %w", c.Cluster, err)
		}
		out = append(out, fmt.Sprintf("%s:%d", host, port))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("clickhouse: cluster %s: %w", c.Cluster, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("clickhouse: cluster %q is not in the server's remote_servers", c.Cluster)
	}
	return out, nil
}

// eachShard runs fn with a connection to every shard of the cluster in
// turn, or with the client's pool on a single server: system tables and
// ALTER TABLE are per server.
func (c *Client) eachShard(ctx context.Context, fn func(driver.Conn) error) error {
	if c.Cluster == "" {
		return fn(c.Conn)
	}
	addrs, err := c.shardAddrs(ctx)
	if err != nil {
		return err
	}
	for _, addr := range addrs {
		conn, err := clickhouse.Open(shardOptions(c.opts, addr))
		if err != nil {
			return fmt.Errorf("shard %s: %w", addr, err)
		}
		err = fn(conn)
		conn.Close()
		if err != nil {
			return fmt.Errorf("shard %s: %w", addr, err)
		}
	}
	return nil
}

// shardOptions are the options for a connection to the one shard at addr:
// those of the pool, so that the DSN's user, password, TLS, timeouts,
// settings and compression reach every shard (a cluster with a password
// or TLS works on all of them, not only the first), with only the address
// replaced. system.clusters lists native ports, so the protocol is native
// whatever the DSN's.
func shardOptions(base *clickhouse.Options, addr string) *clickhouse.Options {
	o := *base
	o.Addr = []string{addr}
	o.Protocol = clickhouse.Native
	return &o
}

func firstWords(s string) string {
	f := strings.Fields(s)
	return strings.Join(f[:min(len(f), 6)], " ")
}
