package embedded

import (
	"cmp"
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
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
//
// The traces are held in sorted arrays, with the ones first written since
// the arrays were built in a map beside them until there are enough to
// merge in (compact): 24 bytes a trace where a Go map took 35-53, and a
// load is one pass over rows DuckDB returns in order instead of millions
// of map inserts.
type traceLocs struct {
	mu sync.RWMutex
	// keys is sorted, without repeats, and locs[i] is where the trace
	// keys[i] lies.
	keys []uint64
	locs []traceLoc
	// added holds the traces not in keys; none of its keys is in keys.
	added map[uint64]traceLoc
	// off means the index is not held (it did not fit the store's budget):
	// readers look in the day's trace_index table instead.
	off bool
	// loading means the table is being read in the background
	// (loadTraceLocsLater): readers look in the table meanwhile, and writes
	// add to added, which the loaded traces are merged with.
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
	return &traceLocs{added: map[uint64]traceLoc{}}
}

// loadingTraceLocs returns an empty index whose traces are still to be
// loaded from the table.
func loadingTraceLocs() *traceLocs {
	return &traceLocs{added: map[uint64]traceLoc{}, loading: true}
}

// get returns where the trace with the low half id lies. The caller holds
// mu.
func (t *traceLocs) get(id uint64) (traceLoc, bool) {
	if i, ok := slices.BinarySearch(t.keys, id); ok {
		return t.locs[i], true
	}
	r, ok := t.added[id]
	return r, ok
}

// count is how many traces the index holds. The caller holds mu.
func (t *traceLocs) count() int { return len(t.keys) + len(t.added) }

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
		if r, ok := t.get(id.lo); ok {
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
	if !t.loading && len(t.added) >= max(minCompact, len(t.keys)/4) {
		t.compact()
	}
	return n
}

// minCompact is how many traces added waits for before they are merged
// into the arrays: below it, a map costs little, and merging the arrays
// more often would copy them for every few batches.
const minCompact = 1 << 16

// widen merges a batch's part of a trace into its location and returns 1
// if the trace was not held before. The caller holds mu.
func (t *traceLocs) widen(id uint64, b traceLoc) int {
	if i, ok := slices.BinarySearch(t.keys, id); ok {
		t.locs[i] = t.locs[i].merge(b)
		return 0
	}
	r, ok := t.added[id]
	if !ok {
		t.added[id] = b
		return 1
	}
	t.added[id] = r.merge(b)
	return 0
}

// compact merges added into the arrays. Merging when added reaches a
// quarter of the arrays keeps the copying to a few times the traces
// written, and the map small beside them. The caller holds mu.
func (t *traceLocs) compact() {
	if len(t.added) == 0 {
		return
	}
	ids := make([]uint64, 0, len(t.added))
	for id := range t.added {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	n := len(t.keys) + len(ids)
	keys, locs := make([]uint64, 0, n), make([]traceLoc, 0, n)
	i := 0
	for _, id := range ids {
		// The held traces before id go in as one run.
		j := i + sort.Search(len(t.keys)-i, func(k int) bool { return t.keys[i+k] > id })
		keys, locs = append(keys, t.keys[i:j]...), append(locs, t.locs[i:j]...)
		keys, locs = append(keys, id), append(locs, t.added[id])
		i = j
	}
	t.keys, t.locs = append(keys, t.keys[i:]...), append(locs, t.locs[i:]...)
	t.added = map[uint64]traceLoc{}
}

// drop turns the index off and returns how many traces it held.
func (t *traceLocs) drop() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.count()
	t.keys, t.locs, t.added, t.off = nil, nil, nil, true
	return n
}

// size returns how many traces the index holds, and false when it is off.
func (t *traceLocs) size() (int, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.count(), !t.off && !t.loading
}

// loadTraceLocs fills p's in-memory index from its trace_index table if it
// fits what is left of the budget, and leaves it off otherwise. It runs
// while the day is being attached, before any write can reach it. A new
// day's empty file always gets its index: the writes that fill it let the
// oldest days' go (noteTraces), since the newest are read most.
func (s *SpanLogStore) loadTraceLocs(ctx context.Context, p *partition) error {
	keys, locs, fits, err := s.readTraceLocs(ctx, p, int64(s.opts.TraceLocations)-s.locCount.Load())
	if err != nil {
		return err
	}
	p.locs = newTraceLocs(fits)
	if fits {
		p.locs.keys, p.locs.locs = keys, locs
		s.locCount.Add(int64(len(keys)))
	}
	return nil
}

// readTraceLocs reads p's trace_index table into sorted arrays, or returns
// false if it holds more than left traces.
//
// The table's rows are read as they lie, through the driver's own row
// reader, and grouped by trace in Go: DuckDB's GROUP BY, and materialising
// its result, took 1.5-2 s over the 2M traces of a 10M-span day, the scan
// alone under 0.1 s; database/sql's Scan converted each value by
// reflection besides.
func (s *SpanLogStore) readTraceLocs(ctx context.Context, p *partition, left int64) (keys []uint64, locs []traceLoc, fits bool, err error) {
	wrap := func(err error) error { return fmt.Errorf("embedded: load trace index of %s: %w", p.path, err) }
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, nil, false, wrap(err)
	}
	defer conn.Close()
	// One row per trace and batch: the rows bound the traces, and DuckDB
	// counts them from its metadata. Only a day with more rows than the
	// budget has its traces counted, which costs as much as grouping them.
	var rowCount int64
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM "+p.alias+".trace_index").Scan(&rowCount); err != nil {
		return nil, nil, false, wrap(err)
	}
	if keys, locs, ok, err := readTraceLocsFile(p, rowCount, left); err != nil {
		s.log.Warn("trace locations written at the last close not read: reading the day's trace index", "file", p.path, "err", err)
	} else if ok {
		return keys, locs, true, nil
	}
	if rowCount > left {
		var traces int64
		if err := conn.QueryRowContext(ctx, "SELECT count(DISTINCT trace_lo) FROM "+p.alias+".trace_index").Scan(&traces); err != nil {
			return nil, nil, false, wrap(err)
		}
		if traces > left {
			return nil, nil, false, nil
		}
	}
	var rows []locRow
	err = conn.Raw(func(dc any) error {
		qc, ok := dc.(driver.QueryerContext)
		if !ok {
			return fmt.Errorf("driver connection %T cannot query", dc)
		}
		res, err := qc.QueryContext(ctx, "SELECT trace_lo, start_min, start_max, coalesce(bytes::BIGINT, -1) FROM "+p.alias+".trace_index", nil)
		if err != nil {
			return err
		}
		defer res.Close()
		// Writes committed since the count add rows.
		rows = make([]locRow, 0, rowCount+rowCount/64)
		vals := make([]driver.Value, 4)
		for {
			if err := res.Next(vals); err == io.EOF {
				return nil
			} else if err != nil {
				return err
			}
			id, ok1 := vals[0].(uint64)
			lo, ok2 := vals[1].(int64)
			hi, ok3 := vals[2].(int64)
			n, ok4 := vals[3].(int64)
			if !ok1 || !ok2 || !ok3 || !ok4 {
				return fmt.Errorf("unexpected row types %T, %T, %T, %T", vals[0], vals[1], vals[2], vals[3])
			}
			rows = append(rows, locRow{id, lo, hi, n})
		}
	})
	if err != nil {
		return nil, nil, false, wrap(err)
	}
	rows = sortLocRows(rows)
	// A trace's rows, now side by side, become one location, as min, max
	// and sum would have made them in SQL.
	j := 0
	for i := 1; i < len(rows); i++ {
		if r := &rows[j]; rows[i].id == r.id {
			r.lo, r.hi = min(r.lo, rows[i].lo), max(r.hi, rows[i].hi)
			if r.n < 0 || rows[i].n < 0 {
				r.n = -1
			} else {
				r.n += rows[i].n
			}
			continue
		}
		j++
		rows[j] = rows[i]
	}
	rows = rows[:min(j+1, len(rows))]
	if int64(len(rows)) > left {
		return nil, nil, false, nil // written to meanwhile, past the budget
	}
	keys, locs = make([]uint64, len(rows)), make([]traceLoc, len(rows))
	for i, r := range rows {
		keys[i], locs[i] = r.id, makeTraceLoc(r.lo, r.hi, r.n)
	}
	return keys, locs, true, nil
}

// locRow is a trace_index row as readTraceLocs reads it: a trace's low
// half, its spans' first and last start and their bytes (-1: unknown).
type locRow struct {
	id        uint64
	lo, hi, n int64
}

// sortLocRows sorts rows by id: one pass puts each row in the bucket of
// its id's top 16 bits, then each bucket is sorted on its own. The low
// halves of trace ids are random, so the buckets hold a few dozen rows
// each at millions of traces; a comparison sort of them all took 0.3 s,
// a byte-at-a-time radix sort 0.18 s. It returns the sorted rows, in a new
// slice.
func sortLocRows(rows []locRow) []locRow {
	if len(rows) < 2 {
		return rows
	}
	const bits = 16
	start := make([]int, 1<<bits+1)
	for _, r := range rows {
		start[r.id>>(64-bits)+1]++
	}
	for i := 1; i < len(start); i++ {
		start[i] += start[i-1]
	}
	next := slices.Clone(start[:1<<bits])
	out := make([]locRow, len(rows))
	for _, r := range rows {
		d := r.id >> (64 - bits)
		out[next[d]] = r
		next[d]++
	}
	for d := range 1 << bits {
		if b := out[start[d]:start[d+1]]; len(b) > 1 {
			slices.SortFunc(b, func(x, y locRow) int { return cmp.Compare(x.id, y.id) })
		}
	}
	return out
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
// added their ranges before committing, so the merged index covers them.
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
	pending, loading := t.count(), t.loading && !t.off
	t.mu.RUnlock()
	if !loading {
		return nil // let go or dropped meanwhile
	}
	keys, locs, fits, err := s.readTraceLocs(ctx, p, int64(s.opts.TraceLocations)-s.locCount.Load()+int64(pending))
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.off {
		return nil
	}
	if !fits { // over the budget, or failed
		s.locCount.Add(-int64(t.count()))
		t.keys, t.locs, t.added, t.off, t.loading = nil, nil, nil, true, false
		return err
	}
	before := t.count()
	for id, b := range t.added {
		if i, ok := slices.BinarySearch(keys, id); ok {
			locs[i] = locs[i].merge(b)
			delete(t.added, id)
		}
	}
	t.keys, t.locs, t.loading = keys, locs, false
	t.compact()
	s.locCount.Add(int64(t.count() - before))
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
