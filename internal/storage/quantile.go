package storage

import (
	"math"
	"slices"
	"time"
)

// DurationQuantile is the q-quantile of durations in nanoseconds,
// interpolated linearly between the closest ranks as DuckDB's
// quantile_cont does, so that the stores that compute RED quantiles in Go
// (in memory, ClickHouse) agree with the embedded store's SQL. It sorts v
// in place; an empty v gives 0.
func DurationQuantile(v []int64, q float64) time.Duration {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	pos := q * float64(len(v)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(v)-1)
	f := float64(v[lo]) + (float64(v[hi])-float64(v[lo]))*(pos-float64(lo))
	return time.Duration(math.Round(f))
}
