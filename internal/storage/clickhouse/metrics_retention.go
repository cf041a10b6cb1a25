package clickhouse

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// DropBefore drops the day partitions of both metric tables whose day ends
// at or before t, on every shard, and reports how many partitions it
// dropped (per table and shard). It works on every server; on servers
// with TTL, MetricsOptions.Retention does the same in the background.
func (s *MetricStore) DropBefore(ctx context.Context, t time.Time) (int, error) {
	cutoff := metricDay(t.UnixMilli()) // days before this one end by t
	dropped := 0
	err := s.c.eachShard(ctx, func(conn driver.Conn) error {
		for _, table := range []string{metricSeriesTable, metricSamplesTable} {
			local := s.c.LocalTable(table)
			rows, err := conn.Query(ctx, fmt.Sprintf(
				"SELECT DISTINCT min_date FROM system.parts WHERE active AND database = %s AND table = %s",
				metricQuote(s.c.Database), metricQuote(local[len(s.c.Database)+1:])))
			if err != nil {
				return err
			}
			var days []int64
			for rows.Next() {
				var day time.Time
				if err := rows.Scan(&day); err != nil {
					rows.Close()
					return err
				}
				if d := metricDay(day.UnixMilli()); d < cutoff {
					days = append(days, d)
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			for _, d := range days {
				// The partition is named by its value; how system.parts
				// spells it differs between server versions, a Date
				// expression works on all.
				if err := conn.Exec(ctx, "ALTER TABLE "+local+" DROP PARTITION "+metricDayLiteral(d)); err != nil {
					return err
				}
				dropped++
			}
		}
		return nil
	})
	// Forget the index rows of the dropped days, so that late samples for
	// them write their series again.
	s.mu.Lock()
	for k := range s.written {
		if k.day < cutoff {
			delete(s.written, k)
		}
	}
	s.mu.Unlock()
	if err != nil {
		return dropped, metricsErr("drop old partitions", err)
	}
	return dropped, nil
}
