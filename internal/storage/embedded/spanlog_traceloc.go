package embedded

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/traceassembly"
)

// DefaultTraceLocations is SpanLogOptions.TraceLocations' default: 4
// million traces (those of 20-30 million spans of ordinary size), 140-220
// MB of memory when all are held.
const DefaultTraceLocations = 4 << 20

// traceLocs is a day's trace index held in memory: for each trace, the
// range of its spans' start times in that day's file. A lookup in it
// replaces the scan of the day's trace_index table, which over millions of
// spans was most of a trace read (the ids are random, so no zonemap helps),
// and the SQL text, parsing and planning that came with it.
//
// It is keyed by the low 64 bits of the trace id alone, the random ones in
// W3C, X-Ray and 64-bit ids alike: two traces sharing them share one,
// wider, range, which only makes the span read scan a little more, since
// that read compares the whole id. Ranges only ever widen, and they widen
// before the spans they cover are committed, so a range always covers
// every committed span of its trace.
type traceLocs struct {
	mu sync.RWMutex
	m  map[uint64]traceLoc
	// off means the map is not held (it did not fit the store's budget):
	// readers look in the day's trace_index table instead.
	off bool
	// loading means the table is being read into the map in the background
	// (loadTraceLocsLater): readers look in the table meanwhile, and writes
	// add to the map, which the loaded entries are merged into.
	loading bool
}

// traceLoc is where a trace's spans lie in one day file, in 16 bytes: the
// earliest start time, the latest as whole milliseconds after it (rounded
// up, which only widens the range), and the size of the spans
// (traceSizeSQL), counting every copy a retried write stored, which the
// reader counts once: it only ever overstates. A size that does not fit, or
// that a file written before the trace index counted lacks, is
// unknownCount; a range too long for its milliseconds runs to the end of
// time.
type traceLoc struct {
	start int64
	ms    uint32
	bytes uint32
}

const (
	unknownCount = math.MaxUint32
	unboundedMs  = math.MaxUint32
)

// makeTraceLoc is the location of spans starting from lo to hi (ns) of
// the given size (negative: unknown).
func makeTraceLoc(lo, hi, bytes int64) traceLoc {
	// Unsigned, so that no difference of two int64s overflows.
	ms := (uint64(hi) - uint64(lo) + 999_999) / 1_000_000
	if hi < lo || ms >= unboundedMs {
		ms = unboundedMs
	}
	return traceLoc{start: lo, ms: uint32(ms), bytes: addCount(0, bytes)}
}

// end is the latest start time the location covers.
func (l traceLoc) end() int64 {
	d := int64(l.ms) * 1_000_000
	if l.ms == unboundedMs || l.start > math.MaxInt64-d {
		return math.MaxInt64
	}
	return l.start + d
}

// merge is the location covering both a and b.
func (l traceLoc) merge(b traceLoc) traceLoc {
	m := makeTraceLoc(min(l.start, b.start), max(l.end(), b.end()), 0)
	if l.end() == math.MaxInt64 || b.end() == math.MaxInt64 {
		m.ms = unboundedMs
	}
	m.bytes = addCount(l.bytes, int64(b.bytes))
	return m
}

// spanRange is l as locateTraces returns it. Every span row is at least
// traceassembly.RowOverhead bytes, which bounds the spans by the size.
func (l traceLoc) spanRange(alias string) spanRange {
	r := spanRange{alias: alias, min: l.start, max: l.end(), spans: -1, bytes: -1}
	if l.bytes != unknownCount {
		r.bytes = int64(l.bytes)
		r.spans = r.bytes / traceassembly.RowOverhead
	}
	return r
}

// addCount adds n to a count, saturating at unknownCount; a negative n is
// unknown.
func addCount(c uint32, n int64) uint32 {
	if n < 0 || int64(c)+n >= unknownCount {
		return unknownCount
	}
	return c + uint32(n)
}

// newTraceLocs returns an empty index, or one that is off.
func newTraceLocs(on bool) *traceLocs {
	if !on {
		return &traceLocs{off: true}
	}
	return &traceLocs{m: map[uint64]traceLoc{}}
}

// each calls fn with the range of every trace of ids the day holds, and
// returns false, calling nothing, when the index is off or still loading
// and the day's trace_index table must be read instead.
func (t *traceLocs) each(ids []traceKey, fn func(traceKey, traceLoc)) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.off || t.loading {
		return false
	}
	for _, id := range ids {
		if r, ok := t.m[id.lo]; ok {
			fn(id, r)
		}
	}
	return true
}

// add widens the ranges of a day's rows, sorted by trace id and then start
// time as WriteTraces sorts them, and returns how many traces are new.
func (t *traceLocs) add(rows []spanRow) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.off {
		return 0
	}
	n := 0
	for i := 0; i < len(rows); {
		j := i + 1
		for j < len(rows) && rows[j].traceHi == rows[i].traceHi && rows[j].traceLo == rows[i].traceLo {
			j++
		}
		var size int64
		for k := i; k < j; k++ {
			size += rows[k].size
		}
		n += t.widen(rows[i].traceLo, makeTraceLoc(rows[i].start, rows[j-1].start, size))
		i = j
	}
	return n
}

// widen merges a batch's part of a trace into its location and returns 1
// if the trace was not held before. The caller holds mu.
func (t *traceLocs) widen(id uint64, b traceLoc) int {
	r, ok := t.m[id]
	if !ok {
		t.m[id] = b
		return 1
	}
	t.m[id] = r.merge(b)
	return 0
}

// drop turns the index off and returns how many traces it held.
func (t *traceLocs) drop() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(t.m)
	t.m, t.off = nil, true
	return n
}

// size returns how many traces the index holds, and false when it is off.
func (t *traceLocs) size() (int, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.m), !t.off && !t.loading
}

// loadTraceLocs fills p's in-memory index from its trace_index table if it
// fits what is left of the budget, and leaves it off otherwise. It runs
// while the day is being attached, before any write can reach it. A new
// day's empty file always gets its index: the writes that fill it let the
// oldest days' go (noteTraces), since the newest are read most.
func (s *SpanLogStore) loadTraceLocs(ctx context.Context, p *partition) error {
	m, err := s.readTraceLocs(ctx, p, int64(s.opts.TraceLocations)-s.locCount.Load())
	if err != nil {
		return err
	}
	p.locs = newTraceLocs(m != nil)
	if m != nil {
		p.locs.m = m
		s.locCount.Add(int64(len(m)))
	}
	return nil
}

// readTraceLocs reads p's trace_index table into a map, or returns nil if
// it holds more than left traces.
func (s *SpanLogStore) readTraceLocs(ctx context.Context, p *partition, left int64) (map[uint64]traceLoc, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT trace_lo, min(start_min), max(start_max), "+traceBytesSQL+" FROM "+p.alias+".trace_index GROUP BY trace_lo")
	if err != nil {
		return nil, fmt.Errorf("embedded: load trace index of %s: %w", p.path, err)
	}
	defer rows.Close()
	m := map[uint64]traceLoc{}
	for rows.Next() {
		if int64(len(m)) >= left {
			// Counting the traces first took as long as loading them.
			return nil, nil
		}
		var id uint64
		var lo, hi, bytes int64
		if err := rows.Scan(&id, &lo, &hi, &bytes); err != nil {
			return nil, fmt.Errorf("embedded: load trace index of %s: %w", p.path, err)
		}
		m[id] = makeTraceLoc(lo, hi, bytes)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("embedded: load trace index of %s: %w", p.path, err)
	}
	return m, nil
}

// loadTraceLocsLater loads the trace indexes of the days attached when the
// store opened, newest first, after it has opened: reading millions of
// them took seconds, which the server's start-up no longer waits for.
// Until a day's are in, its traces are looked up in its table.
func (s *SpanLogStore) loadTraceLocsLater(ctx context.Context) {
	defer close(s.locsLoaded)
	for _, p := range s.snapshot() {
		if ctx.Err() != nil {
			return
		}
		start := time.Now()
		if err := s.loadTraceLocsNow(ctx, &p); err != nil && ctx.Err() == nil && !errors.Is(err, storage.ErrClosed) {
			s.log.Warn("trace index of a day not loaded into memory: its traces are looked up in the file", "file", p.path, "err", err)
		} else if n, held := p.locs.size(); held {
			// Until then the day's trace reads scan its table: how long
			// that lasts after a start matters.
			s.log.Info("trace index of a day loaded into memory", "file", p.path, "traces", n, "took", time.Since(start))
		}
	}
}

// loadTraceLocsNow reads p's table into its loading index and merges in
// what writes added meanwhile; writes that commit after the table was read
// added their ranges before committing, so the merged map covers them.
func (s *SpanLogStore) loadTraceLocsNow(ctx context.Context, p *partition) error {
	// Shared, so that the day is not detached (DropBefore) or the store
	// closed while its table is read.
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return storage.ErrClosed
	}
	t := p.locs
	t.mu.RLock()
	pending, loading := len(t.m), t.loading && !t.off
	t.mu.RUnlock()
	if !loading {
		return nil // let go or dropped meanwhile
	}
	m, err := s.readTraceLocs(ctx, p, int64(s.opts.TraceLocations)-s.locCount.Load()+int64(pending))
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.off {
		return nil
	}
	if m == nil { // over the budget, or failed
		s.locCount.Add(-int64(len(t.m)))
		t.m, t.off, t.loading = nil, true, false
		return err
	}
	for id, b := range t.m {
		if r, ok := m[id]; ok {
			b = r.merge(b)
		}
		m[id] = b
	}
	s.locCount.Add(int64(len(m) - len(t.m)))
	t.m, t.loading = m, false
	return nil
}

// traceSpansSQL and traceBytesSQL sum the spans and bytes columns of
// trace_index rows, -1 when a row predates them.
const (
	traceSpansSQL = "CASE WHEN count(spans) = count(*) THEN sum(spans) ELSE -1 END::BIGINT"
	traceBytesSQL = "CASE WHEN count(bytes) = count(*) THEN sum(bytes) ELSE -1 END::BIGINT"
)

// noteTraces records where a day's rows (sorted as WriteTraces sorts them)
// lie, before they are committed: a reader in between looks where nothing
// is yet, as it would have before the write, and a failed commit leaves a
// range covering nothing. Past the budget, the oldest days' indexes are let
// go, so memory stays bounded and those days are read as before.
func (s *SpanLogStore) noteTraces(p *partition, rows []spanRow) {
	if n := p.locs.add(rows); n > 0 && s.locCount.Add(int64(n)) > int64(s.opts.TraceLocations) {
		s.shedTraceLocs()
	}
}

// shedTraceLocs turns off the in-memory indexes of the oldest days until
// the rest fit the budget.
func (s *SpanLogStore) shedTraceLocs() {
	s.pmu.Lock()
	held := make([]*partition, 0, len(s.parts))
	for _, p := range s.parts {
		held = append(held, p)
	}
	s.pmu.Unlock()
	slices.SortFunc(held, func(a, b *partition) int { return cmp.Compare(a.day, b.day) })
	for _, p := range held {
		if s.locCount.Load() <= int64(s.opts.TraceLocations) {
			return
		}
		if n := p.locs.drop(); n > 0 {
			s.locCount.Add(-int64(n))
			s.log.Info("trace index of a day no longer held in memory: over the budget", "file", p.path, "traces", n)
		}
	}
}
