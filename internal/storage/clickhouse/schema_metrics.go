package clickhouse

import (
	"bytes"
	"context"
	"fmt"
	"text/template"
	"time"
)

// Table names of the metric store (Client.Table and Client.LocalTable
// qualify them).
const (
	metricSeriesTable  = "metric_series"
	metricSamplesTable = "metric_samples"
)

// metricSchema is the one definition of the metric tables; the feature
// switches adapt it to the server.
//
// metric_series holds one row per series per day on which it has samples
// (an index per day, as Cortex keeps one per period): label queries then
// read only the days they ask about, and retention drops a day of the
// index with the day of samples. Its sort key starts with the metric name
// because nearly every PromQL selector names one. ReplacingMergeTree makes
// a series written again (by another vigil process, or after a restart
// emptied the in-memory cache) collapse into one row.
//
// metric_samples is sorted by (series, time) so that one series' samples
// are contiguous and the timestamp and value columns compress as time
// series (DoubleDelta, Gorilla). Duplicates of (series, time) are allowed
// on insert, as ClickHouse is append-only: the written column orders them,
// the reader keeps the last write and background merges of the
// ReplacingMergeTree eventually keep only that one. Native histograms are
// encoded in the histogram column, empty for floats.
var metricSchema = template.Must(template.New("metrics").Parse(`
{{- define "series" -}}
(
    day Date,
    id UInt64,
    metric {{.LowCardinalityString}},
    label_names Array({{.LowCardinalityString}}),
    label_values Array(String)
) ENGINE = ReplacingMergeTree
PARTITION BY day
ORDER BY (metric, id)
{{- .TTL}}
{{- end -}}
{{- define "samples" -}}
(
    day Date,
    id UInt64,
    ts Int64{{.TimestampCodec}},
    value Float64{{.ValueCodec}},
    histogram String{{.StringCodec}},
    written UInt64{{.WrittenCodec}}
) ENGINE = ReplacingMergeTree(written)
PARTITION BY day
ORDER BY (id, ts)
{{- .TTL}}
{{- end -}}
`))

// metricSchemaSwitches are the feature switches of metricSchema.
type metricSchemaSwitches struct {
	LowCardinalityString string
	TimestampCodec       string
	ValueCodec           string
	StringCodec          string
	WrittenCodec         string
	TTL                  string
}

func metricSchemaParams(f Features, retention time.Duration) metricSchemaSwitches {
	p := metricSchemaSwitches{LowCardinalityString: "String"}
	if f.LowCardinality {
		p.LowCardinalityString = "LowCardinality(String)"
	}
	switch {
	case metricTimeSeriesCodecs(f):
		p.TimestampCodec = " CODEC(DoubleDelta, LZ4)"
		p.ValueCodec = " CODEC(Gorilla, LZ4)"
		p.StringCodec = " CODEC(ZSTD(1))"
		p.WrittenCodec = " CODEC(Delta, LZ4)"
	case f.Codecs:
		p.TimestampCodec = " CODEC(Delta, ZSTD(1))"
		p.ValueCodec = " CODEC(ZSTD(1))"
		p.StringCodec = " CODEC(ZSTD(1))"
		p.WrittenCodec = " CODEC(Delta, ZSTD(1))"
	}
	if f.TTL && retention > 0 {
		days := int((retention + 24*time.Hour - 1) / (24 * time.Hour))
		p.TTL = fmt.Sprintf("\nTTL day + INTERVAL %d DAY", days)
	}
	return p
}

// metricTimeSeriesCodecs reports whether the server has the DoubleDelta and
// Gorilla codecs, which came after the generic ones (19.1 brought ZSTD and
// Delta; these two are safe from 20.1).
func metricTimeSeriesCodecs(f Features) bool {
	major, _ := versionParts(f.Version)
	return f.Codecs && major >= 20
}

// metricDDL returns the statements creating the metric tables, in order:
// the tables holding rows (local tables in a cluster) first, then the
// Distributed tables over them. Both tables of a cluster shard by series
// id, so a series' index rows and samples live on one shard and its
// duplicates meet there to be merged.
func metricDDL(c *Client, retention time.Duration) ([]string, error) {
	p := metricSchemaParams(c.Features, retention)
	var out []string
	for _, t := range []struct{ name, def string }{
		{metricSeriesTable, "series"},
		{metricSamplesTable, "samples"},
	} {
		var body bytes.Buffer
		if err := metricSchema.ExecuteTemplate(&body, t.def, p); err != nil {
			return nil, fmt.Errorf("clickhouse: metric schema %s: %w", t.name, err)
		}
		out = append(out, "CREATE TABLE IF NOT EXISTS "+c.LocalTable(t.name)+" "+body.String())
	}
	if c.Cluster != "" {
		for _, name := range []string{metricSeriesTable, metricSamplesTable} {
			out = append(out, fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s AS %s ENGINE = Distributed(%s, %s, %s_local, id)",
				c.Table(name), c.LocalTable(name), c.Cluster, c.Database, name))
		}
	}
	return out, nil
}

// createMetricTables creates the metric tables on every shard; it is
// idempotent, so every vigil process runs it at start.
func createMetricTables(ctx context.Context, c *Client, retention time.Duration) error {
	ddl, err := metricDDL(c, retention)
	if err != nil {
		return err
	}
	for _, stmt := range ddl {
		if err := c.ExecEverywhere(ctx, stmt); err != nil {
			return err
		}
	}
	return nil
}
