package spanmetrics

import (
	"strconv"
	"time"
)

// bucketBounds are the spanmetrics connector's default histogram buckets.
var bucketBounds = [...]time.Duration{
	2 * time.Millisecond, 4 * time.Millisecond, 6 * time.Millisecond, 8 * time.Millisecond,
	10 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond,
	400 * time.Millisecond, 800 * time.Millisecond, time.Second, 1400 * time.Millisecond,
	2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second,
}

// nBuckets counts the +Inf bucket too.
const nBuckets = len(bucketBounds) + 1

// bucketLabels are the le label values, "+Inf" last, formatted as
// Prometheus' OTLP translator does.
var bucketLabels = func() [nBuckets]string {
	var les [nBuckets]string
	for i, b := range bucketBounds {
		les[i] = strconv.FormatFloat(b.Seconds(), 'f', -1, 64)
	}
	les[nBuckets-1] = "+Inf"
	return les
}()

// hist is a classic histogram of durations. Bucket counts are per bucket,
// not cumulative; the flush accumulates them.
type hist struct {
	buckets [nBuckets]uint64
	count   uint64
	sumNs   uint64
}

// observe adds a duration in nanoseconds (never negative).
func (h *hist) observe(ns int64) {
	i := 0
	// A linear scan beats a binary search over 16 bounds, and most spans
	// are short so it usually stops early.
	for i < len(bucketBounds) && ns > int64(bucketBounds[i]) {
		i++
	}
	h.buckets[i]++
	h.count++
	h.sumNs += uint64(ns)
}
