package clickhouse

import (
	"fmt"
	"strings"
	"time"
)

// The span and log schema is written once, as column lists, and rendered
// for the server at hand: slColumn's kind picks the type and codec that
// Features allow. Timestamps are Int64 Unix nanoseconds on every server
// (18.16 has no DateTime64) and each table carries a Date column, computed
// by the writer, that is its day partition key. Attribute maps, events and
// links are attrenc's typed JSON in String columns (18.16 has no Map type),
// the same text the embedded store keeps.

// slKind says how a column is typed and compressed.
type slKind uint8

const (
	slPlain   slKind = iota // the type as written, default compression
	slLowCard               // String; LowCardinality(String) where supported
	slTime                  // Int64 ns that grow along the sort key: Delta then ZSTD
	slText                  // long String: ZSTD
)

type slColumn struct {
	name, typ string
	kind      slKind
}

// spanColumns is the spans table. ORDER BY (service, start_ns) serves
// search ("this service, this time range"); trace lookups go through
// trace_index instead.
var spanColumns = []slColumn{
	{"date", "Date", slPlain},
	{"trace_hi", "UInt64", slPlain},
	{"trace_lo", "UInt64", slPlain},
	{"span_id", "UInt64", slPlain},
	{"parent_span_id", "UInt64", slPlain},
	{"start_ns", "Int64", slTime},
	{"duration_ns", "Int64", slText},
	{"service", "String", slLowCard},
	{"name", "String", slLowCard},
	{"kind", "UInt8", slPlain},
	{"status_code", "UInt8", slPlain},
	{"status_message", "String", slText},
	{"trace_state", "String", slText},
	{"flags", "UInt32", slPlain},
	{"attributes", "String", slText},
	{"dropped_attributes", "UInt32", slPlain},
	{"events", "String", slText},
	{"dropped_events", "UInt32", slPlain},
	{"links", "String", slText},
	{"dropped_links", "UInt32", slPlain},
	{"resource_attributes", "String", slText},
	{"resource_dropped", "UInt32", slPlain},
	{"resource_schema_url", "String", slLowCard},
	{"scope_name", "String", slLowCard},
	{"scope_version", "String", slLowCard},
	{"scope_attributes", "String", slText},
	{"scope_dropped", "UInt32", slPlain},
	{"scope_schema_url", "String", slLowCard},
}

// traceIndexColumns is the trace-id lookup: one row per trace, batch and
// day, sorted by trace id, so GetTrace learns which days and which start
// range to read before touching the spans table.
var traceIndexColumns = []slColumn{
	{"date", "Date", slPlain},
	{"trace_hi", "UInt64", slPlain},
	{"trace_lo", "UInt64", slPlain},
	{"start_min", "Int64", slPlain},
	{"start_max", "Int64", slPlain},
}

// logColumns is the logs table. ts_ns is the record's Timestamp, or its
// ObservedTimestamp when unset (time_unset), so filters and ordering use one
// column. row_id is random: it breaks ties between equal timestamps for
// FindLogs' order and cursors, and spreads logs without a trace id over the
// shards.
var logColumns = []slColumn{
	{"date", "Date", slPlain},
	{"ts_ns", "Int64", slTime},
	{"row_id", "UInt64", slPlain},
	{"time_unset", "UInt8", slPlain},
	{"observed_ns", "Int64", slText},
	{"trace_hi", "UInt64", slPlain},
	{"trace_lo", "UInt64", slPlain},
	{"span_id", "UInt64", slPlain},
	{"flags", "UInt32", slPlain},
	{"severity_number", "UInt8", slPlain},
	{"severity_text", "String", slLowCard},
	{"service", "String", slLowCard},
	{"body", "String", slText},
	{"attributes", "String", slText},
	{"dropped_attributes", "UInt32", slPlain},
	{"event_name", "String", slLowCard},
	{"resource_attributes", "String", slText},
	{"resource_dropped", "UInt32", slPlain},
	{"resource_schema_url", "String", slLowCard},
	{"scope_name", "String", slLowCard},
	{"scope_version", "String", slLowCard},
	{"scope_attributes", "String", slText},
	{"scope_dropped", "UInt32", slPlain},
	{"scope_schema_url", "String", slLowCard},
}

// slTable is one of the store's tables.
type slTable struct {
	name    string
	columns []slColumn
	orderBy string
	// shardKey routes rows to shards in a cluster: a trace's spans, index
	// rows and logs all land on the shard of its id.
	shardKey string
	// indexes are data skipping indexes for servers that have them.
	indexes []string
}

var (
	spansTable = slTable{
		name: "spans", columns: spanColumns,
		orderBy:  "service, start_ns",
		shardKey: "cityHash64(trace_hi, trace_lo)",
		indexes:  []string{"INDEX trace_bf trace_lo TYPE bloom_filter(0.01) GRANULARITY 4"},
	}
	traceIndexTable = slTable{
		name: "trace_index", columns: traceIndexColumns,
		orderBy:  "trace_hi, trace_lo",
		shardKey: "cityHash64(trace_hi, trace_lo)",
	}
	logsTable = slTable{
		name: "logs", columns: logColumns,
		orderBy:  "service, ts_ns",
		shardKey: "if(trace_hi = 0 AND trace_lo = 0, row_id, cityHash64(trace_hi, trace_lo))",
		indexes: []string{
			"INDEX trace_bf trace_lo TYPE bloom_filter(0.01) GRANULARITY 4",
			// Term search lowercases the body; the token filter answers
			// LIKE on the same expression (see logConditions).
			"INDEX body_tokens lowerUTF8(body) TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 4",
		},
	}
	spanLogTables = []slTable{spansTable, traceIndexTable, logsTable}
)

// columnList is the table's column names, for INSERT and SELECT.
func (t slTable) columnList() string {
	names := make([]string, len(t.columns))
	for i, c := range t.columns {
		names[i] = c.name
	}
	return strings.Join(names, ", ")
}

// localDDL renders CREATE TABLE for the table holding the rows (the only
// table on a single server, <name>_local on each shard of a cluster).
func (t slTable) localDDL(c *Client, ttl time.Duration) string {
	f := c.Features
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s (\n", c.LocalTable(t.name))
	for i, col := range t.columns {
		if i > 0 {
			b.WriteString(",\n")
		}
		typ := col.typ
		if col.kind == slLowCard && f.LowCardinality {
			typ = "LowCardinality(String)"
		}
		fmt.Fprintf(&b, "\t%s %s", col.name, typ)
		if f.Codecs {
			switch col.kind {
			case slTime:
				b.WriteString(" CODEC(Delta, ZSTD(1))")
			case slText:
				b.WriteString(" CODEC(ZSTD(1))")
			}
		}
	}
	if f.SkipIndexes {
		for _, ix := range t.indexes {
			b.WriteString(",\n\t" + ix)
		}
	}
	fmt.Fprintf(&b, "\n) ENGINE = MergeTree\nPARTITION BY date\nORDER BY (%s)", t.orderBy)
	if f.TTL && ttl > 0 {
		// Whole days go, matching DropBefore on servers without TTL.
		days := int((ttl + 24*time.Hour - 1) / (24 * time.Hour))
		fmt.Fprintf(&b, "\nTTL date + toIntervalDay(%d)", days)
	}
	return b.String()
}

// distributedDDL renders the Distributed table over the shards' local
// tables, named as the table itself.
func (t slTable) distributedDDL(c *Client) string {
	return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s AS %s ENGINE = Distributed(%s, %s, %s_local, %s)",
		c.Table(t.name), c.LocalTable(t.name), c.Cluster, c.Database, t.name, t.shardKey)
}
