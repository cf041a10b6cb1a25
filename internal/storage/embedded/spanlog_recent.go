package embedded

import (
	"slices"
	"strings"
	"sync"
	"unsafe"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/traceassembly"
)

// DefaultRecentTraceBytes is SpanLogOptions.RecentTraceBytes' default.
const DefaultRecentTraceBytes = 64 << 20

// recentTraces holds the spans of the traces written last, as the rows
// GetTrace would read back from the day files, so that a trace read soon
// after it arrived (a search result opened, a trace followed from a log
// line or an alert) is assembled from memory: the one SQL query of a read
// from a file costs about a millisecond of DuckDB time however small the
// trace, most of it decompressing vectors of every column.
//
// Only traces whose every stored span it holds are kept. A trace is taken
// when its first spans are written, which the in-memory trace indexes of
// all days tell: it is not in any of them (so while a day's index is off
// or loading no new trace is taken). From then on every batch with spans
// of it adds them once committed, and the trace leaves the cache whole,
// the oldest taken first, once the rows held pass the budget, or when
// retention drops a day. A read of a trace not held, or held with no
// committed span yet, or one that would not fit the read's limits, goes to
// the files as before.
//
// Rows are added after their commit, so a read sees what the files would
// show once the write is acknowledged; a read racing a write may miss the
// spans of a batch committed but not yet added, as it may miss them in the
// files before the commit.
type recentTraces struct {
	budget int64

	mu     sync.Mutex
	used   int64
	traces map[traceKey]*recentTrace
	// order lists the traces in the order they were taken, from head on.
	order []traceKey
	head  int
}

type recentTrace struct {
	rows  []traceassembly.Row
	bytes int64
}

// rowBytes is what a held row counts against the budget: its strings as
// traceassembly.Row.Size counts them and the struct itself.
func rowBytes(r *traceassembly.Row) int64 {
	return r.Size() + int64(unsafe.Sizeof(*r))
}

// newRecentTraces returns a cache of at most budget bytes, or nil (which
// holds nothing) if budget is not positive.
func newRecentTraces(budget int64) *recentTraces {
	if budget <= 0 {
		return nil
	}
	return &recentTraces{budget: budget, traces: map[traceKey]*recentTrace{}}
}

// admit takes the traces of a day's rows (sorted by trace id, as
// WriteTraces sorts them) that no day holds a span of yet. It must run
// before the rows are noted in the trace index (noteTraces), so that a
// trace's first batch finds it absent, and it holds the cache's lock while
// it looks, so that of two batches with the first spans of one trace, the
// second finds it taken by the first.
func (c *recentTraces) admit(locs []*traceLocs, day []spanRow) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var fresh []traceKey
	for i := 0; i < len(day); i++ {
		k := traceKey{day[i].traceHi, day[i].traceLo}
		if i > 0 && k == (traceKey{day[i-1].traceHi, day[i-1].traceLo}) {
			continue
		}
		if _, ok := c.traces[k]; !ok {
			fresh = append(fresh, k)
		}
	}
	if len(fresh) == 0 {
		return
	}
	seen := make([]bool, len(fresh))
	for _, t := range locs {
		if t == nil || !t.lookup(fresh, seen) {
			return // a day whose traces are not known in memory
		}
	}
	for i, k := range fresh {
		if !seen[i] {
			// Counted from the start, so that traces whose batches fail
			// to commit, and never get rows, still go in their turn.
			c.traces[k] = &recentTrace{bytes: traceOverhead}
			c.order = append(c.order, k)
			c.used += traceOverhead
		}
	}
	c.evict()
}

// traceOverhead is what a held trace counts against the budget besides
// its rows: its map entry, its place in the order and its struct.
const traceOverhead = 96

// evict lets the oldest traces go until the rest fit the budget. The
// caller holds mu.
func (c *recentTraces) evict() {
	for c.used > c.budget && c.head < len(c.order) {
		k := c.order[c.head]
		c.order[c.head] = traceKey{}
		c.head++
		if e := c.traces[k]; e != nil {
			c.used -= e.bytes
			delete(c.traces, k)
		}
	}
	if c.head > len(c.order)/2 {
		c.order = append(c.order[:0], c.order[c.head:]...)
		c.head = 0
	}
}

// lookup sets seen[i] when the day holds a trace with ids[i]'s low half,
// and returns false when the index is off or loading, so that it cannot
// tell.
func (t *traceLocs) lookup(ids []traceKey, seen []bool) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.off || t.loading {
		return false
	}
	for i, id := range ids {
		if _, ok := t.get(id.lo); ok {
			seen[i] = true
		}
	}
	return true
}

// add copies the committed rows of the traces held into the cache, and
// lets the oldest traces go past the budget. The rows' strings are copied,
// into one string per call: the encoded ones live in the batch's arena,
// the others in the request.
func (c *recentTraces) add(day []spanRow, arena []byte) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// First the held traces' runs of rows, and the strings of those
	// rows, copied into one buffer.
	type run struct {
		e    *recentTrace
		i, j int
	}
	var runs []run
	size := 0
	for i := 0; i < len(day); {
		k := traceKey{day[i].traceHi, day[i].traceLo}
		j := i + 1
		for j < len(day) && day[j].traceHi == k.hi && day[j].traceLo == k.lo {
			j++
		}
		if e := c.traces[k]; e != nil {
			runs = append(runs, run{e, i, j})
			for _, r := range day[i:j] {
				size += int(r.attrs[1]-r.attrs[0]) + int(r.events[1]-r.events[0]) + int(r.links[1]-r.links[0]) +
					len(r.name) + len(r.traceState) + len(r.statusMsg) + len(r.httpMethod) + len(r.httpRoute)
			}
		}
		i = j
	}
	if len(runs) == 0 {
		return
	}
	buf := make([]byte, 0, size)
	for _, rn := range runs {
		for _, r := range day[rn.i:rn.j] {
			buf = append(buf, arena[r.attrs[0]:r.attrs[1]]...)
			buf = append(buf, arena[r.events[0]:r.events[1]]...)
			buf = append(buf, arena[r.links[0]:r.links[1]]...)
			buf = append(buf, r.name...)
			buf = append(buf, r.traceState...)
			buf = append(buf, r.statusMsg...)
			buf = append(buf, r.httpMethod...)
			buf = append(buf, r.httpRoute...)
		}
	}
	// buf is not written to again.
	str := unsafe.String(unsafe.SliceData(buf), len(buf))
	next := func(n int) string {
		s := str[:n]
		str = str[n:]
		return s
	}
	res := map[*encodedResource]encodedResource{}
	sc := map[*encodedScope]encodedScope{}
	for _, rn := range runs {
		e := rn.e
		e.rows = slices.Grow(e.rows, rn.j-rn.i)
		for k := rn.i; k < rn.j; k++ {
			r := &day[k]
			rr, ok := res[r.res]
			if !ok {
				rr = encodedResource{service: strings.Clone(r.res.service), attrs: strings.Clone(r.res.attrs),
					schemaURL: strings.Clone(r.res.schemaURL), dropped: r.res.dropped}
				res[r.res] = rr
			}
			ss, ok := sc[r.scope]
			if !ok {
				ss = encodedScope{name: strings.Clone(r.scope.name), version: strings.Clone(r.scope.version),
					attrs: strings.Clone(r.scope.attrs), schemaURL: strings.Clone(r.scope.schemaURL), dropped: r.scope.dropped}
				sc[r.scope] = ss
			}
			row := traceassembly.Row{
				SpanID: r.spanID, ParentID: r.parentID, Start: r.start, Duration: r.duration,
				Attributes: next(int(r.attrs[1] - r.attrs[0])), Events: next(int(r.events[1] - r.events[0])), Links: next(int(r.links[1] - r.links[0])),
				Name: next(len(r.name)), TraceState: next(len(r.traceState)), StatusMessage: next(len(r.statusMsg)),
				Kind: r.kind, StatusCode: r.statusCode, Flags: r.flags,
				DroppedAttributes: r.droppedAttrs, DroppedEvents: r.droppedEv, DroppedLinks: r.droppedLk,
				Service: rr.service, ResourceAttributes: rr.attrs, ResourceDropped: rr.dropped, ResourceSchemaURL: rr.schemaURL,
				ScopeName: ss.name, ScopeVersion: ss.version, ScopeAttributes: ss.attrs, ScopeDropped: ss.dropped, ScopeSchemaURL: ss.schemaURL,
			}
			method, route := next(len(r.httpMethod)), next(len(r.httpRoute))
			if keys, status := r.httpKeys, r.httpStatus; keys != 0 {
				row.Restore = func(a pcommon.Map) { restoreHTTP(a, keys, method, route, status) }
			}
			n := rowBytes(&row)
			e.rows = append(e.rows, row)
			e.bytes += n
			c.used += n
		}
	}
	c.evict()
}

// get assembles a held trace as GetTrace would from the files, under the
// read limit lim (nil: none). It reports false when the trace is not held,
// has no committed span yet, or does not fit lim whole: the files then
// answer, and size the trace first.
func (c *recentTraces) get(id pcommon.TraceID, lim *storage.TraceReadLimit) (ptrace.Traces, bool, error) {
	if c == nil {
		return ptrace.Traces{}, false, nil
	}
	c.mu.Lock()
	var rows []traceassembly.Row
	var bytes int64
	if e := c.traces[traceIDKey(id)]; e != nil {
		// Rows are only ever appended: the ones up to this length stay
		// as they are.
		rows, bytes = e.rows[:len(e.rows):len(e.rows)], e.bytes-traceOverhead
	}
	c.mu.Unlock()
	if len(rows) == 0 {
		return ptrace.Traces{}, false, nil
	}
	var limits traceassembly.Limits
	if lim != nil {
		limits = traceassembly.Limits{MaxSpans: lim.MaxSpans, MaxBytes: lim.MaxBytes}
		// Copies counted too, and the struct: within these, every span
		// fits.
		if (lim.MaxSpans > 0 && len(rows) > lim.MaxSpans) || (lim.MaxBytes > 0 && bytes > lim.MaxBytes) {
			return ptrace.Traces{}, false, nil
		}
	}
	asm := traceassembly.New(id, limits)
	for _, r := range rows {
		asm.Add(r)
	}
	if lim != nil {
		lim.ReadBytes = asm.Bytes()
	}
	td, err := asm.Traces()
	return td, err == nil, err
}

// clear lets every trace go.
func (c *recentTraces) clear() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.traces)
	c.order, c.head, c.used = nil, 0, 0
}
