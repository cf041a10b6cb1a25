package lokiapi

import (
	"math"
	"strconv"
)

// queryData is the data of a query answer: "streams", "matrix", "vector"
// or "scalar" results, with the query's statistics.
type queryData struct {
	ResultType string `json:"resultType"`
	Result     any    `json:"result"`
	Stats      *stats `json:"stats,omitempty"`
}

// point is a sample, encoded as Loki and Prometheus do: [seconds, "value"].
type point struct {
	T int64 // milliseconds
	V float64
}

func (p point) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 40)
	b = append(b, '[')
	b = strconv.AppendFloat(b, float64(p.T)/1000, 'f', -1, 64)
	b = append(b, ',', '"')
	b = append(b, formatValue(p.V)...)
	b = append(b, '"', ']')
	return b, nil
}

// formatValue prints a sample value as Prometheus's API does.
func formatValue(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

type vectorSample struct {
	Metric map[string]string `json:"metric"`
	Value  point             `json:"value"`
}

type matrixSeries struct {
	Metric map[string]string `json:"metric"`
	Values []point           `json:"values"`
}

// streamResult is one stream of a log query's answer; each value is
// ["<unix nanoseconds>", "<line>"].
type streamResult struct {
	Stream map[string]string `json:"stream"`
	Values [][2]string       `json:"values"`
}

// stats is the part of Loki's query statistics that clients read: the
// summary Grafana's query inspector shows.
type stats struct {
	Summary statsSummary `json:"summary"`
}

type statsSummary struct {
	BytesProcessedPerSecond int64   `json:"bytesProcessedPerSecond"`
	LinesProcessedPerSecond int64   `json:"linesProcessedPerSecond"`
	TotalBytesProcessed     int64   `json:"totalBytesProcessed"`
	TotalLinesProcessed     int64   `json:"totalLinesProcessed"`
	ExecTime                float64 `json:"execTime"`
	QueueTime               float64 `json:"queueTime"`
	Subqueries              int     `json:"subqueries"`
	TotalEntriesReturned    int     `json:"totalEntriesReturned"`
	Splits                  int     `json:"splits"`
	Shards                  int     `json:"shards"`
}
