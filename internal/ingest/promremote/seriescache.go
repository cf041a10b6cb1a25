package promremote

import (
	"slices"
	"sync"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// DefaultSeriesCacheSize is the number of series whose labels and storage
// reference the handler remembers when Options.SeriesCacheSize is zero.
const DefaultSeriesCacheSize = 1 << 18

// seriesCache maps a series' label fields, as a sender encodes them, to the
// labels they decode to and the storage reference of the series, as
// Prometheus's scrape cache maps a scraped metric's text. Senders encode a
// series the same way in every request, so a known series is appended by
// reference with no label decoding, sorting, validation or allocation, and
// without the head's lookup by label hash.
//
// Entries are found by a hash of the label bytes and confirmed by comparing
// the labels themselves (sameLabels), so a hash collision is a miss, never
// another series. Only series whose labels passed validation are cached.
//
// A reference may outlive its series: the head drops series that received
// nothing for a while when it truncates. The TSDB's appender looks a
// reference up first and, when it finds nothing, falls back to the labels
// passed alongside (which the cache holds for this reason) and returns the
// new reference, which replaces the stale one.
//
// The cache is bounded by keeping two generations per shard: when the
// current one is full it becomes the previous one and the oldest is
// dropped; an entry found in the previous generation moves to the current.
// Series still being sent therefore stay, and series no longer sent age
// out. It is safe for concurrent use: each shard has its own lock.
type seriesCache struct {
	shards [seriesCacheShards]cacheShard
	// perGeneration bounds each generation of each shard.
	perGeneration int
}

const seriesCacheShards = 16

type cacheShard struct {
	mu        sync.Mutex
	cur, prev map[uint64]cacheEntry
	_         [40]byte // keeps shards' locks on separate cache lines
}

type cacheEntry struct {
	ls  labels.Labels
	ref storage.SeriesRef
}

// newSeriesCache returns a cache of about size series; size <= 0 returns
// nil, which caches nothing.
func newSeriesCache(size int) *seriesCache {
	if size <= 0 {
		return nil
	}
	c := &seriesCache{perGeneration: max(1, size/seriesCacheShards/2)}
	for i := range c.shards {
		c.shards[i].cur = map[uint64]cacheEntry{}
	}
	return c
}

func hashLabelFields(fields []byte) uint64 { return xxhash.Sum64(fields) }

// get returns the cached series for label fields of hash h.
func (c *seriesCache) get(h uint64, fields []byte) (cacheEntry, bool) {
	if c == nil {
		return cacheEntry{}, false
	}
	s := &c.shards[h%seriesCacheShards]
	s.mu.Lock()
	e, ok := s.cur[h]
	if !ok {
		if e, ok = s.prev[h]; ok {
			delete(s.prev, h)
			s.putLocked(h, e, c.perGeneration)
		}
	}
	s.mu.Unlock()
	if ok && !sameLabels(fields, e.ls) {
		return cacheEntry{}, false
	}
	return e, ok
}

// seriesHit is what lookup found for one series of a batch.
type seriesHit struct {
	hash  uint64
	entry cacheEntry
	// eligible: the series was decoded as byte ranges and has samples;
	// known: it was found in the cache.
	eligible, known bool
}

// lookup finds in the cache every series of b decoded as byte ranges, as
// get does for one, into b.hits. Each shard's lock is taken once per
// request instead of once per series, and the map accesses, each likely a
// cache miss over a hundred thousand series, follow one another closely
// enough for the processor to overlap them.
func (c *seriesCache) lookup(b *batch) {
	n := len(b.series)
	b.hits = slices.Grow(b.hits[:0], n)[:n]
	var first [seriesCacheShards + 1]int32
	for i := range b.series {
		ws, hit := &b.series[i], &b.hits[i]
		*hit = seriesHit{}
		if ws.full >= 0 || ws.first == ws.end {
			continue
		}
		hit.hash, hit.eligible = hashLabelFields(ws.labels), true
		first[hit.hash%seriesCacheShards+1]++
	}
	if c == nil {
		return
	}
	// The series' indexes ordered by shard (a counting sort).
	for i := 1; i <= seriesCacheShards; i++ {
		first[i] += first[i-1]
	}
	b.order = slices.Grow(b.order[:0], int(first[seriesCacheShards]))[:first[seriesCacheShards]]
	next := first
	for i := range b.hits {
		if hit := &b.hits[i]; hit.eligible {
			sh := hit.hash % seriesCacheShards
			b.order[next[sh]] = int32(i)
			next[sh]++
		}
	}
	for sh := range seriesCacheShards {
		idx := b.order[first[sh]:first[sh+1]]
		if len(idx) == 0 {
			continue
		}
		s := &c.shards[sh]
		s.mu.Lock()
		for _, i := range idx {
			hit := &b.hits[i]
			e, ok := s.cur[hit.hash]
			if !ok {
				if e, ok = s.prev[hit.hash]; ok {
					delete(s.prev, hit.hash)
					s.putLocked(hit.hash, e, c.perGeneration)
				}
			}
			hit.entry, hit.known = e, ok
		}
		s.mu.Unlock()
	}
	for i := range b.hits {
		if hit := &b.hits[i]; hit.known && !sameLabels(b.series[i].labels, hit.entry.ls) {
			hit.entry, hit.known = cacheEntry{}, false
		}
	}
}

// put remembers the series; on a hash collision the newer series wins.
func (c *seriesCache) put(h uint64, e cacheEntry) {
	if c == nil {
		return
	}
	s := &c.shards[h%seriesCacheShards]
	s.mu.Lock()
	s.putLocked(h, e, c.perGeneration)
	s.mu.Unlock()
}

func (s *cacheShard) putLocked(h uint64, e cacheEntry, perGeneration int) {
	if _, ok := s.cur[h]; !ok && len(s.cur) >= perGeneration {
		s.prev, s.cur = s.cur, make(map[uint64]cacheEntry, perGeneration)
	}
	s.cur[h] = e
}

// len returns the number of cached series (for tests).
func (c *seriesCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.cur) + len(s.prev)
		s.mu.Unlock()
	}
	return n
}
