package doctor

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage"
)

// SpanShapeReader reads how stored spans connect and when they ran;
// storage.DiagnosisReader satisfies it.
type SpanShapeReader interface {
	SpanShapes(ctx context.Context, q storage.SpanShapeQuery) ([]storage.SpanShape, error)
}

// Defaults of the trace checks.
const (
	defaultSpanWindow = 5 * time.Minute
	defaultSpanGrace  = 30 * time.Second
	defaultSpanLimit  = 200_000
	defaultMinSpans   = 5
	defaultMinRatio   = 0.1
	// spanLookback is read before the judged window so that the parents
	// and callers of its first spans are there too.
	spanLookback = time.Minute
)

// PropagationCheck finds the hops where trace context is lost
// (broken_propagation). It judges the spans that started in the Window
// ending Grace ago, so that late children and parents have arrived, and
// reports a hop "upstream → downstream" when one of these is seen often
// enough to rule out chance:
//
//   - the downstream's server spans start new traces while they are nested
//     in time inside a span of the upstream (the caller made the call
//     without injecting traceparent); a nesting rate no higher than the one
//     the same spans get when shifted in time is chance, as it is under
//     heavy concurrency around a service that legitimately has no caller;
//   - the upstream's client spans to an address a traced downstream serves
//     have no server child (the callee drops what the caller keeps);
//   - spans whose parent never arrives ("? → svc" when the caller cannot be
//     told, "svc" alone when the missing parent is in the same service).
//
// Client spans to addresses no traced service serves (a database, an
// external API) are calls to uninstrumented code, not broken propagation,
// and are ignored. Consumer spans are never judged by nesting: messaging
// consumers legitimately start new traces linked to the producer.
type PropagationCheck struct {
	Spans SpanShapeReader
	// Window is the time judged (5m if 0); it ends Grace ago (30s if 0).
	Window, Grace time.Duration
	// MinSpans is the fewest broken spans a hop needs to be reported (5 if
	// 0); MinRatio the smallest share of the downstream's server spans, or
	// of the upstream's calls, they must make (0.1 if 0).
	MinSpans int
	MinRatio float64
	// Tolerance is how far a span may stick out of the span it is nested
	// in, for clocks that disagree a little (5ms if 0, and at most a
	// quarter of the nested span).
	Tolerance time.Duration
	// Limit caps the spans read (200000 if 0); when it cuts, the judged
	// window is shortened to the spans whose surroundings were read.
	Limit int
	Now   func() time.Time
}

// Name implements Check.
func (c PropagationCheck) Name() string { return "propagation" }

// Run implements Check.
func (c PropagationCheck) Run(ctx context.Context) ([]Finding, error) {
	now := clockOf(c.Now)
	w, err := loadSpanWindow(ctx, c.Spans, now(), cmp.Or(c.Window, defaultSpanWindow), cmp.Or(c.Grace, defaultSpanGrace), cmp.Or(c.Limit, defaultSpanLimit))
	if err != nil {
		return nil, err
	}
	minSpans := cmp.Or(c.MinSpans, defaultMinSpans)
	// Clocks minutes apart put children outside the spans read: judge on
	// one clock, over a range wide enough for the offsets.
	if clock := serviceClocks(measureOffsets(w, minSpans)); len(clock) > 0 {
		if w, err = correctedSpanWindow(ctx, c.Spans, w, now(), cmp.Or(c.Grace, defaultSpanGrace), cmp.Or(c.Limit, defaultSpanLimit), clock); err != nil {
			return nil, err
		}
	}
	a := &propagation{w: w, tol: cmp.Or(c.Tolerance, 5*time.Millisecond).Nanoseconds(), hops: map[hop]*hopEvidence{}}
	a.index()
	a.newTraces()
	a.orphans()
	a.unansweredCalls()
	return a.findings(minSpans, cmp.Or(c.MinRatio, defaultMinRatio)), nil
}

// spanKey identifies a span.
type spanKey struct {
	trace pcommon.TraceID
	span  pcommon.SpanID
}

// spanWindow is what the trace checks read: the spans that started in
// [judgeStart, judgeEnd) are judged, the others are only their context.
type spanWindow struct {
	spans                []storage.SpanShape // by start
	judgeStart, judgeEnd int64               // Unix ns
	// readStart is where the spans read begin, on the judging clock.
	readStart int64
	byID      map[spanKey]int
	// hasChild holds the spans some read span names as parent.
	hasChild map[spanKey]bool
}

// loadSpanWindow reads the spans around [now-grace-window, now-grace). In a
// doctor run, checks asking for the same window, grace and limit share one
// read (the first caller's now; a doctor reads one span store).
func loadSpanWindow(ctx context.Context, r SpanShapeReader, now time.Time, window, grace time.Duration, limit int) (*spanWindow, error) {
	type key struct {
		window, grace time.Duration
		limit         int
	}
	return memoized(ctx, key{window, grace, limit}, func() (*spanWindow, error) {
		return readSpanWindow(ctx, r, now, window, grace, limit)
	})
}

func readSpanWindow(ctx context.Context, r SpanShapeReader, now time.Time, window, grace time.Duration, limit int) (*spanWindow, error) {
	judgeEnd := now.Add(-grace)
	judgeStart := judgeEnd.Add(-window)
	spans, err := r.SpanShapes(ctx, storage.SpanShapeQuery{Start: judgeStart.Add(-spanLookback), End: now, Limit: limit})
	if err != nil {
		return nil, fmt.Errorf("doctor: read span shapes: %w", err)
	}
	less := func(a, b storage.SpanShape) int { return cmp.Compare(a.Start, b.Start) }
	if !slices.IsSortedFunc(spans, less) {
		slices.SortStableFunc(spans, less)
	}
	w := &spanWindow{spans: spans, judgeStart: judgeStart.UnixNano(), judgeEnd: judgeEnd.UnixNano(), readStart: judgeStart.Add(-spanLookback).UnixNano()}
	if len(spans) == limit {
		// The latest spans were cut: judge only those whose children and
		// callers had time to be read.
		w.judgeEnd = min(w.judgeEnd, spans[len(spans)-1].Start-grace.Nanoseconds())
		if w.judgeEnd <= w.judgeStart {
			return nil, fmt.Errorf("doctor: more than %d spans started between %s and %s: raise the check's span limit or shorten its window",
				limit, judgeStart.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
	}
	w.index()
	return w, nil
}

// index builds byID and hasChild from spans.
func (w *spanWindow) index() {
	w.byID = make(map[spanKey]int, len(w.spans))
	w.hasChild = make(map[spanKey]bool, len(w.spans))
	for i, s := range w.spans {
		w.byID[spanKey{s.TraceID, s.SpanID}] = i
		if !s.ParentSpanID.IsEmpty() {
			w.hasChild[spanKey{s.TraceID, s.ParentSpanID}] = true
		}
	}
}

func (w *spanWindow) judged(s *storage.SpanShape) bool {
	return s.Start >= w.judgeStart && s.Start < w.judgeEnd
}

// parent returns the index of s's parent, or -1 when s is a root or its
// parent was not read.
func (w *spanWindow) parent(s *storage.SpanShape) int {
	if s.ParentSpanID.IsEmpty() {
		return -1
	}
	if i, ok := w.byID[spanKey{s.TraceID, s.ParentSpanID}]; ok {
		return i
	}
	return -1
}

func (w *spanWindow) window() string {
	return time.Unix(0, w.judgeStart).UTC().Format(time.RFC3339) + " to " + time.Unix(0, w.judgeEnd).UTC().Format(time.RFC3339)
}

// ended reports whether s has a usable end time.
func ended(s *storage.SpanShape) bool { return s.End != 0 && s.End >= s.Start }

// hop is where context is lost: from is "" when the caller cannot be told,
// and equals to when the lost parent is in the same service.
type hop struct{ from, to string }

func (h hop) subject() string {
	switch h.from {
	case "":
		return "? → " + h.to
	case h.to:
		return h.to
	}
	return h.from + " → " + h.to
}

// hopEvidence is what was seen of one hop.
type hopEvidence struct {
	// newTraces counts the downstream's root server spans nested in the
	// upstream's spans, chance how many would be by chance, viaClient those
	// nested in a client span without a child.
	newTraces int
	chance    float64
	viaClient int
	// calls counts the upstream's client spans to an address the
	// downstream serves, unanswered those without a child.
	calls, unanswered int
	orphans           int
	// between counts, per other service with spans in an orphan's trace,
	// the orphans it may be the lost caller of.
	between map[string]int
	// containers counts, per upstream span holding new traces, how many it
	// holds: whether they track the upstream's spans one-to-one.
	containers map[int]int
	// ops counts the upstream operations involved; rpc and named the
	// downstream span names that look like RPC methods, of those seen.
	ops        map[string]int
	rpc, named int
	// The first trace ids of each kind of evidence.
	newSamples, callSamples, orphanSamples []string
}

// addSamples adds trace ids to samples, up to MaxSamples.
func addSamples(samples []string, ids ...pcommon.TraceID) []string {
	for _, id := range ids {
		samples = mergeSamples(samples, id.String())
	}
	return samples
}

// mergeSamples adds samples to dst, up to MaxSamples and each once.
func mergeSamples(dst []string, samples ...string) []string {
	for _, s := range samples {
		if len(dst) < MaxSamples && !slices.Contains(dst, s) {
			dst = append(dst, s)
		}
	}
	return dst
}

// majorOp returns the most frequent upstream operation and its share.
func (e *hopEvidence) majorOp() (string, float64) {
	best, n, total := "", 0, 0
	for _, op := range slices.Sorted(maps.Keys(e.ops)) {
		total += e.ops[op]
		if e.ops[op] > n {
			best, n = op, e.ops[op]
		}
	}
	if total == 0 {
		return "", 0
	}
	return best, float64(n) / float64(total)
}

// propagation is one run's analysis.
type propagation struct {
	w   *spanWindow
	tol int64
	// maxEnd[i] is the latest end of a possible container among spans
	// [0, i]: it stops the backward search for containers early.
	maxEnd []int64
	// nextOther[i] is the first span after i of another service than i's.
	nextOther []int
	// serverSpans and localSpans count the judged spans per service, of
	// kind server or consumer and of the other kinds.
	serverSpans, localSpans map[string]int
	// peers maps the addresses server spans report to their service ("" if
	// more than one service serves it).
	peers map[string]string
	// orphaned holds the traces in which a service's spans are orphans:
	// there a call without a server span lost its callee's server span
	// alone, which orphans reports.
	orphaned map[orphanedIn]bool
	hops     map[hop]*hopEvidence
	// groups holds the starts of the judged spans of each kind of span, in
	// order: the spans a caller's span could have been.
	groups map[spanGroup][]int64
	// lastStart is, per service, the latest start of its spans read: a
	// service that exports in batches minutes apart has sent nothing
	// after it yet, so calls to it after then cannot be judged.
	lastStart map[string]int64
	// horizon is the first span read when the data begins after the start
	// of the range read (retention cut the older spans, or vigil started
	// then): parents before it are gone, not lost.
	horizon int64
	// dropping holds the services whose spans go missing one by one
	// (their export queue drops spans): orphans of their own and, in the
	// same traces, orphans of their callees.
	dropping map[string]bool
}

// spanGroup is one kind of span of one service: the spans that run the
// same code.
type spanGroup struct {
	service, name string
	kind          ptrace.SpanKind
}

func groupOf(s *storage.SpanShape) spanGroup { return spanGroup{s.Service, s.Name, s.Kind} }

type orphanedIn struct {
	trace   pcommon.TraceID
	service string
}

// maxContainer bounds the spans searched as containers: nesting in a span
// that lasts minutes says little about who made a call, and the bound keeps
// the search short.
const maxContainer = time.Minute

// horizonGap is how long after the start of the range read the first span
// may start before the data is taken to begin there.
const horizonGap = 10 * time.Second

// maxWalk bounds the spans one container search looks at.
const maxWalk = 4096

// shifts move root spans in time to measure how often they would be nested
// in another service's spans by chance. They are longer than calls usually
// last and have uneven fractions, so that no shift lines up with a load
// generator's period.
var shifts = []time.Duration{
	7313 * time.Millisecond, -11171 * time.Millisecond, 13737 * time.Millisecond, -17393 * time.Millisecond,
	19919 * time.Millisecond, -23577 * time.Millisecond, 29031 * time.Millisecond, -31459 * time.Millisecond,
}

func (a *propagation) index() {
	spans := a.w.spans
	a.maxEnd = make([]int64, len(spans))
	a.nextOther = make([]int, len(spans))
	for i := len(spans) - 1; i >= 0; i-- {
		switch {
		case i == len(spans)-1:
			a.nextOther[i] = len(spans)
		case spans[i+1].Service != spans[i].Service:
			a.nextOther[i] = i + 1
		default:
			a.nextOther[i] = a.nextOther[i+1]
		}
	}
	a.serverSpans, a.localSpans = map[string]int{}, map[string]int{}
	a.peers = map[string]string{}
	a.groups = map[spanGroup][]int64{}
	a.lastStart = map[string]int64{}
	if len(spans) > 0 && spans[0].Start > a.w.readStart+horizonGap.Nanoseconds() {
		a.horizon = spans[0].Start
	}
	m := int64(0)
	for i := range spans {
		s := &spans[i]
		if ended(s) && s.End-s.Start <= maxContainer.Nanoseconds() {
			m = max(m, s.End)
		}
		a.maxEnd[i] = m
		a.lastStart[s.Service] = max(a.lastStart[s.Service], s.Start)
		server := s.Kind == ptrace.SpanKindServer || s.Kind == ptrace.SpanKindConsumer
		if server && s.Peer != "" {
			if svc, ok := a.peers[s.Peer]; !ok {
				a.peers[s.Peer] = s.Service
			} else if svc != s.Service {
				a.peers[s.Peer] = ""
			}
		}
		if !a.w.judged(s) {
			continue
		}
		a.groups[groupOf(s)] = append(a.groups[groupOf(s)], s.Start)
		if server {
			a.serverSpans[s.Service]++
		} else {
			a.localSpans[s.Service]++
		}
	}
}

func (a *propagation) hop(from, to string) *hopEvidence {
	h := hop{from, to}
	e := a.hops[h]
	if e == nil {
		e = &hopEvidence{ops: map[string]int{}, containers: map[int]int{}, between: map[string]int{}}
		a.hops[h] = e
	}
	return e
}

// container returns the span that contains [start, end], belongs to
// another service than svc and to another trace than trace, and started
// last: the likeliest caller. It returns -1 when there is none.
func (a *propagation) container(start, end int64, svc string, trace pcommon.TraceID) int {
	spans := a.w.spans
	tol := a.tolerance(start, end)
	i := sort.Search(len(spans), func(i int) bool { return spans[i].Start > start+tol }) - 1
	for steps := 0; i >= 0 && steps < maxWalk; i, steps = i-1, steps+1 {
		if a.maxEnd[i] < end-tol {
			return -1
		}
		s := &spans[i]
		if s.Service != svc && s.TraceID != trace && a.contains(s, start, end, tol) && s.End-s.Start <= maxContainer.Nanoseconds() {
			return i
		}
	}
	return -1
}

// activityRadius is how close to a shifted span another service's span
// must start for the shift to count: chance is only measured where there
// is traffic, not in the quiet before a service started or between bursts,
// which would make it look rarer than it is.
const activityRadius = 2 * time.Second

// active reports whether a span of another service than svc starts within
// activityRadius of t.
func (a *propagation) active(t int64, svc string) bool {
	spans := a.w.spans
	r := activityRadius.Nanoseconds()
	i := sort.Search(len(spans), func(i int) bool { return spans[i].Start >= t-r })
	if i < len(spans) && spans[i].Service == svc {
		i = a.nextOther[i]
	}
	return i < len(spans) && spans[i].Start <= t+r
}

// tolerance is how far a span of [start, end] may stick out of its caller's
// span: the configured tolerance, but at most a quarter of the span, so
// that short spans are not taken as nested in spans that merely follow
// them.
func (a *propagation) tolerance(start, end int64) int64 {
	return min(a.tol, (end-start)/4)
}

// contains reports whether s can be the caller of a span of [start, end]:
// it runs around it (within tol) and lasts longer, as a caller waits for
// its callee; lasting longer also settles which of two spans that fit in
// each other within the tolerance is the caller.
func (a *propagation) contains(s *storage.SpanShape, start, end, tol int64) bool {
	return ended(s) && s.Start <= start+tol && s.End >= end-tol && s.End-s.Start >= end-start
}

// operation names what the span's service was doing: for a client span,
// the local operation that made the call (HTTP client spans are named by
// the method alone).
func (a *propagation) operation(i int) string {
	s := &a.w.spans[i]
	if s.Kind == ptrace.SpanKindClient {
		if p := a.w.parent(s); p >= 0 && a.w.spans[p].Service == s.Service {
			return a.w.spans[p].Name
		}
	}
	return s.Name
}

var rpcMethod = regexp.MustCompile(`^/?[A-Za-z_][\w.]*\.[A-Za-z_]\w*/[A-Za-z_]\w*$`)

func (e *hopEvidence) name(n string) {
	e.named++
	if rpcMethod.MatchString(n) {
		e.rpc++
	}
}

// newTraces attributes the root server spans nested in another service's
// spans to that service, and measures how many would be by chance.
func (a *propagation) newTraces() {
	spans := a.w.spans
	for i := range spans {
		r := &spans[i]
		if !a.w.judged(r) || r.Kind != ptrace.SpanKindServer || !r.ParentSpanID.IsEmpty() || !ended(r) {
			continue
		}
		c := a.container(r.Start, r.End, r.Service, r.TraceID)
		if c >= 0 {
			up := &spans[c]
			e := a.hop(up.Service, r.Service)
			e.newTraces++
			e.containers[c]++
			e.ops[a.operation(c)]++
			e.name(r.Name)
			if up.Kind == ptrace.SpanKindClient && !a.w.hasChild[spanKey{up.TraceID, up.SpanID}] {
				e.viaClient++
			}
			e.newSamples = addSamples(e.newSamples, r.TraceID, up.TraceID)
		}
		// The same span elsewhere in time: how often is it nested by chance?
		var found []int
		for _, d := range shifts {
			s, end := r.Start+d.Nanoseconds(), r.End+d.Nanoseconds()
			if s < a.w.judgeStart || s >= a.w.judgeEnd || !a.active(s, r.Service) {
				continue
			}
			found = append(found, a.container(s, end, r.Service, r.TraceID))
		}
		if len(found) == 0 {
			// Nowhere to compare: count the nesting as chance.
			found = append(found, c)
		}
		for _, c := range found {
			if c >= 0 {
				a.hop(spans[c].Service, r.Service).chance += 1 / float64(len(found))
			}
		}
	}
}

// unansweredCalls counts client spans to an address a traced service
// serves that have no child.
func (a *propagation) unansweredCalls() {
	spans := a.w.spans
	for i := range spans {
		c := &spans[i]
		if !a.w.judged(c) || c.Kind != ptrace.SpanKindClient || c.Peer == "" {
			continue
		}
		to := a.peers[c.Peer]
		if to == "" || to == c.Service || c.Start > a.lastStart[to] {
			// Nothing of to after the call arrived yet: its spans come
			// in late batches, and the answer may be among them.
			continue
		}
		e := a.hop(c.Service, to)
		e.calls++
		if a.w.hasChild[spanKey{c.TraceID, c.SpanID}] || a.orphaned[orphanedIn{c.TraceID, to}] {
			continue
		}
		e.unanswered++
		e.ops[a.operation(i)]++
		e.name(c.Name)
		e.callSamples = addSamples(e.callSamples, c.TraceID)
	}
}

// orphans counts the spans whose parent never arrived. A trace that has
// spans before the judged window may have its parent before the spans
// read, so its orphans are not counted.
func (a *propagation) orphans() {
	spans := a.w.spans
	var orphans []int
	traces := map[pcommon.TraceID][]int{}
	for i := range spans {
		s := &spans[i]
		if a.w.judged(s) && !s.ParentSpanID.IsEmpty() && a.w.parent(s) < 0 {
			orphans = append(orphans, i)
			traces[s.TraceID] = nil
		}
	}
	if len(orphans) == 0 {
		return
	}
	for i := range spans {
		if t, ok := traces[spans[i].TraceID]; ok {
			traces[spans[i].TraceID] = append(t, i)
		}
	}
	parents := a.usualParents(orphans)
	a.orphaned = map[orphanedIn]bool{}
	for _, i := range orphans {
		o := &spans[i]
		if spans[traces[o.TraceID][0]].Start < a.w.judgeStart {
			continue
		}
		if a.horizon != 0 && o.Start < a.horizon+maxContainer.Nanoseconds() {
			// Its parent may have started before the oldest span kept.
			continue
		}
		a.orphaned[orphanedIn{o.TraceID, o.Service}] = true
		if o.Kind != ptrace.SpanKindServer && o.Kind != ptrace.SpanKindConsumer {
			e := a.hop(o.Service, o.Service)
			e.orphans++
			if p := parents[opKey{o.Service, o.Name}]; p != "" {
				e.ops[p]++
			}
			e.orphanSamples = addSamples(e.orphanSamples, o.TraceID)
			continue
		}
		// The caller is the innermost span of another service of the same
		// trace around it, when one arrived.
		from, op := "", ""
		end := o.End
		if !ended(o) {
			end = o.Start
		}
		tol := a.tolerance(o.Start, end)
		for _, j := range slices.Backward(traces[o.TraceID]) {
			if s := &spans[j]; s.Service != o.Service && a.contains(s, o.Start, end, tol) {
				from, op = s.Service, a.operation(j)
				break
			}
		}
		e := a.hop(from, o.Service)
		e.orphans++
		if op != "" {
			e.ops[op]++
		}
		e.name(o.Name)
		e.orphanSamples = addSamples(e.orphanSamples, o.TraceID)
		// The services between: one that dropped both its spans around
		// the call leaves the orphan inside its own caller's span.
		seen := map[string]bool{from: true, o.Service: true}
		for _, j := range traces[o.TraceID] {
			if svc := spans[j].Service; !seen[svc] {
				seen[svc] = true
				e.between[svc]++
			}
		}
	}
}

// usualParents names, for the operations of the spans given, the
// operation of the same service that is most often their parent where it
// did arrive: the span that goes missing.
func (a *propagation) usualParents(orphans []int) map[opKey]string {
	counts := map[opKey]map[string]int{}
	for _, i := range orphans {
		counts[opKey{a.w.spans[i].Service, a.w.spans[i].Name}] = map[string]int{}
	}
	for i := range a.w.spans {
		s := &a.w.spans[i]
		byParent, ok := counts[opKey{s.Service, s.Name}]
		if !ok {
			continue
		}
		if p := a.w.parent(s); p >= 0 && a.w.spans[p].Service == s.Service {
			byParent[a.w.spans[p].Name]++
		}
	}
	out := map[opKey]string{}
	for k, byParent := range counts {
		best := 0
		for _, name := range slices.Sorted(maps.Keys(byParent)) {
			if byParent[name] > best {
				out[k], best = name, byParent[name]
			}
		}
	}
	return out
}

// minTracked is the share of a caller's spans that must each hold a root
// of the callee for the roots to track the caller one-to-one: a call made
// on every request is missed only where it fails before the callee starts.
// The share is taken at the lower end of its 95% confidence interval, so
// that a few dozen spans nested by a shared schedule do not pass by luck,
// and over the caller's spans since the first that holds one, so that a
// call that lost its context in a deployment a minute ago is judged on the
// minute since.
const minTracked = 0.8

// minPossible is the smallest share of the downstream's server spans that
// nest in the upstream's, beyond chance, for an uncorroborated possibility
// to be worth an info finding: below it, services that clients call side
// by side nest in each other's spans now and then.
const minPossible = 0.5

// wilsonLower is the lower bound of the 95% Wilson score interval of k
// successes in n trials.
func wilsonLower(k, n int) float64 {
	if n == 0 {
		return 0
	}
	const z = 1.96
	p, fn := float64(k)/float64(n), float64(n)
	return (p + z*z/(2*fn) - z*math.Sqrt(p*(1-p)/fn+z*z/(4*fn*fn))) / (1 + z*z/fn)
}

// tracking returns the share of the upstream's spans, of the kinds that
// hold most of the downstream's new traces, that hold one since the first
// did, and whether it is high enough. Calls track their caller's spans one
// to one; a client calling both services at once (a browser, a BFF, a
// batch job) makes the callee's roots land inside the other's spans only
// when the timing happens to fit, so only some of them hold one.
func (a *propagation) tracking(e *hopEvidence, minSpans int) (float64, bool) {
	held := map[spanGroup]int{}
	onset := map[spanGroup]int64{}
	for c := range e.containers {
		s := &a.w.spans[c]
		if !a.w.judged(s) {
			continue
		}
		g := groupOf(s)
		if held[g] == 0 || s.Start < onset[g] {
			onset[g] = s.Start
		}
		held[g]++
	}
	var h, n int
	for g, k := range held {
		// Kinds of span holding a few by chance do not count.
		if k < max(minSpans, e.newTraces/10) {
			continue
		}
		starts := a.groups[g]
		i, _ := slices.BinarySearch(starts, onset[g])
		h, n = h+k, n+len(starts)-i
	}
	if n == 0 {
		return 0, false
	}
	return float64(h) / float64(n), wilsonLower(h, n) >= minTracked
}

func (a *propagation) findings(minSpans int, minRatio float64) []Finding {
	// A service whose own spans lose their parents while, in the same
	// traces, its callees' spans lose theirs inside its spans drops spans
	// one by one: neither a sampler (whole traces) nor a span never ended
	// (one operation, whose callees' parents, its client spans, arrive).
	a.dropping = map[string]bool{}
	for h, e := range a.hops {
		if self := a.hops[hop{h.from, h.from}]; h.from != "" && h.from != h.to && e.orphans >= minSpans && self != nil && self.orphans >= minSpans {
			a.dropping[h.from] = true
		}
	}
	var out []Finding
	for _, h := range slices.SortedFunc(maps.Keys(a.hops), func(x, y hop) int {
		return cmp.Or(cmp.Compare(x.to, y.to), cmp.Compare(x.from, y.from))
	}) {
		if f, ok := a.finding(h, a.hops[h], minSpans, minRatio); ok {
			out = append(out, f)
		}
	}
	return out
}

func (a *propagation) finding(h hop, e *hopEvidence, minSpans int, minRatio float64) (Finding, bool) {
	down := a.serverSpans[h.to]
	if h.from == h.to {
		down = a.localSpans[h.to]
	}
	// New traces count when they are well above chance: by a share of the
	// downstream's spans, by half as many again (the bias left in the
	// estimate of chance is far smaller), and by four standard deviations.
	excess := float64(e.newTraces) - e.chance
	newOK := down > 0 && excess >= float64(minSpans) && excess/float64(down) >= minRatio &&
		float64(e.newTraces) >= 1.5*e.chance && excess >= 4*math.Sqrt(e.chance)
	callsOK := e.calls > 0 && e.unanswered >= minSpans && float64(e.unanswered)/float64(e.calls) >= minRatio
	orphansOK := down > 0 && e.orphans >= minSpans && float64(e.orphans)/float64(down) >= minRatio
	if !newOK && !callsOK && !orphansOK {
		return Finding{}, false
	}
	// Nesting in time alone is what one client calling both services at
	// once looks like too: a warning needs a client span of the upstream
	// to the downstream's address, or the new traces tracking the
	// upstream's spans one-to-one.
	tracked, tracks := 0.0, false
	if newOK {
		tracked, tracks = a.tracking(e, minSpans)
	}
	possible := newOK && !callsOK && !orphansOK && e.calls == 0 && !tracks
	if possible && excess/float64(down) < minPossible {
		return Finding{}, false
	}
	values := map[string]float64{"downstream_spans": float64(down)}
	var seen []string
	ratio := 0.0
	var samples []string
	op, share := e.majorOp()
	// from names the upstream operation, once.
	from := func() string {
		if op == "" || len(seen) > 0 {
			return ""
		}
		return fmt.Sprintf(", most often from %s's %s (%.0f%%)", h.from, op, 100*share)
	}
	if newOK {
		ratio = max(ratio, excess/float64(down))
		values["new_traces"] = float64(e.newTraces)
		values["expected_by_chance"] = e.chance
		values["new_traces_in_client_spans"] = float64(e.viaClient)
		values["tracked_share"] = tracked
		seen = append(seen, fmt.Sprintf("%d of %s's %d server spans (%.0f%%) started new traces while nested in %s's spans (%.1f expected by chance)%s",
			e.newTraces, h.to, down, 100*float64(e.newTraces)/float64(down), h.from, e.chance, from()))
		if possible {
			seen = append(seen, fmt.Sprintf("nothing else links them: no client span of %s goes to %s's address, and only %.0f%% of the %s spans of the kinds they nest in hold one", h.from, h.to, 100*tracked, h.from))
		}
		samples = mergeSamples(samples, e.newSamples...)
	}
	if callsOK {
		r := float64(e.unanswered) / float64(e.calls)
		ratio = max(ratio, r)
		values["calls"] = float64(e.calls)
		values["calls_without_child"] = float64(e.unanswered)
		seen = append(seen, fmt.Sprintf("%d of %s's %d calls to %s (%.0f%%) have no server span of %s under them%s",
			e.unanswered, h.from, e.calls, h.to, 100*r, h.to, from()))
		samples = mergeSamples(samples, e.callSamples...)
		if !newOK && e.viaClient > 0 {
			values["new_traces_in_client_spans"] = float64(e.viaClient)
			seen = append(seen, fmt.Sprintf("%d of those calls have a server span of %s starting a new trace inside them", e.viaClient, h.to))
		}
	}
	if orphansOK {
		r := float64(e.orphans) / float64(down)
		ratio = max(ratio, r)
		values["orphans"] = float64(e.orphans)
		samples = mergeSamples(samples, e.orphanSamples...)
		switch h.from {
		case h.to:
			s := fmt.Sprintf("%d of %s's %d internal and client spans (%.0f%%) name a parent span that never arrived", e.orphans, h.to, down, 100*r)
			if op != "" {
				s += fmt.Sprintf("; where it arrives, their parent is mostly %s (%.0f%%)", op, 100*share)
			}
			seen = append(seen, s)
		case "":
			seen = append(seen, fmt.Sprintf("%d of %s's %d server spans (%.0f%%) name a parent span that never arrived, and no span of their caller arrived either", e.orphans, h.to, down, 100*r))
		default:
			seen = append(seen, fmt.Sprintf("%d of %s's %d server spans (%.0f%%) name a parent span that never arrived, inside %s's spans%s", e.orphans, h.to, down, 100*r, h.from, from()))
		}
	}
	values["ratio"] = ratio
	// Client spans with the callee's new trace inside them: the call is
	// instrumented, the context does not get through.
	uninjected := (newOK || callsOK) && e.viaClient >= minSpans && (2*e.viaClient >= e.newTraces || 2*e.viaClient >= e.unanswered)
	cause, fix := propagationAdvice(h, e, op, uninjected, newOK, callsOK)
	if dropper := a.dropper(h, e); !newOK && !callsOK && dropper != "" {
		cause, fix = queueDropAdvice(dropper)
	}
	// Not critical: traces are cut or incomplete, but the spans that
	// arrive still feed metrics and alerts.
	sev := Warning
	if possible {
		sev = Info
		cause, fix = coOccurrenceAdvice(h, op)
	}
	return Finding{
		Code:     "broken_propagation",
		Severity: sev,
		Subject:  h.subject(),
		Evidence: Evidence{Summary: strings.Join(seen, "; "), Values: values, Window: a.w.window(), Samples: samples},
		Cause:    cause,
		Fix:      fix,
	}, true
}

// dropper names the service whose export queue explains the hop's
// orphans: the upstream, or a service between with spans in the same
// traces, most often; "" when none drops spans.
func (a *propagation) dropper(h hop, e *hopEvidence) string {
	if h.from != "" && a.dropping[h.from] {
		return h.from
	}
	best, n := "", 0
	for _, svc := range slices.Sorted(maps.Keys(e.between)) {
		if a.dropping[svc] && e.between[svc] > n {
			best, n = svc, e.between[svc]
		}
	}
	return best
}

// queueDropAdvice names an exporter that drops spans one by one.
func queueDropAdvice(svc string) (cause, fix string) {
	h := hop{from: svc}
	cause = fmt.Sprintf("%s's spans go missing one by one, not whole traces and not one operation's: its exporter drops spans (the batch span processor's queue fills up and drops what does not fit), so spans of %s and of its callees name parents that never arrive", h.from, h.from)
	fix = fmt.Sprintf("in %s, give the batch span processor room: a larger queue (OTEL_BSP_MAX_QUEUE_SIZE, 2048 by default) and batches (OTEL_BSP_MAX_EXPORT_BATCH_SIZE), or a shorter delay between exports (OTEL_BSP_SCHEDULE_DELAY); its SDK logs the spans it drops; check vigil_rejected_total{signal=\"traces\"} for spans vigil refused", h.from)
	return cause, fix
}

// coOccurrenceAdvice says what nesting in time alone may mean, and what
// would settle it.
func coOccurrenceAdvice(h hop, op string) (cause, fix string) {
	where := h.from + "'s code"
	if op != "" {
		where = "the code behind " + h.from + "'s " + op
	}
	cause = fmt.Sprintf("possibly %s calls %s without trace context; but the new traces only nest in time inside %s's spans, which is also what one client (a browser, a BFF, a batch job) calling both services at once looks like", h.from, h.to, h.from)
	fix = fmt.Sprintf("settle it in %s: if it calls %s, call it with the instrumented client (the vigil SDK's svc.HTTPClient(), or otelhttp.NewTransport; for gRPC, the otelgrpc stats handler) and the request's context: its client spans then name %s's address, and the doctor either finds the context lost (a warning) or nothing; if it does not, %s's callers are outside your traces and nothing is broken", where, h.to, h.to, h.to)
	return cause, fix
}

// propagationAdvice says why context is lost on the hop and what to change,
// from the strongest evidence seen.
func propagationAdvice(h hop, e *hopEvidence, op string, uninjected, newOK, callsOK bool) (cause, fix string) {
	rpc := e.named > 0 && 2*e.rpc > e.named
	where := h.from + "'s code"
	if op != "" {
		where = "the code behind " + h.from + "'s " + op
	}
	switch {
	case uninjected:
		cause = fmt.Sprintf("%s makes traced calls to %s (its client spans are there) but %s does not receive or does not read the trace context, so it starts new traces", h.from, h.to, h.to)
		fix = fmt.Sprintf("set a global propagator in both services, otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})) (the vigil SDK's vigil.New does), make sure %s's server is wrapped by the instrumentation that reads it (the vigil SDK's svc.NewServer or otelhttp.NewHandler", h.to)
		if rpc {
			fix = fmt.Sprintf("set a global propagator in both services, otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})) (the vigil SDK's vigil.New does), make sure %s's gRPC server is created with the instrumentation that reads it (grpc.NewServer(svc.GRPCServerOptions()...) with the vigil SDK, or grpc.StatsHandler(otelgrpc.NewServerHandler())", h.to)
		}
		fix += "), and that no proxy between them drops the traceparent header"
	case newOK:
		cause = fmt.Sprintf("%s calls %s without trace context: there is no client span for the call and %s starts a new trace, so the call goes through an uninstrumented client or without the request's context", h.from, h.to, h.to)
		if rpc {
			fix = fmt.Sprintf("in %s, dial %s with the instrumented options (grpc.NewClient(addr, svc.GRPCDialOptions()...) with the vigil SDK, or grpc.WithStatsHandler(otelgrpc.NewClientHandler())) and pass the request's context to every call", where, h.to)
		} else {
			fix = fmt.Sprintf("in %s, call %s with the instrumented client (the vigil SDK's svc.HTTPClient(), or &http.Client{Transport: otelhttp.NewTransport(http.DefaultTransport)}) instead of a hand-built http.Client, http.Get or http.DefaultClient, build the request with http.NewRequestWithContext(r.Context(), ...), and set a global propagator (otel.SetTextMapPropagator(propagation.TraceContext{}))", where, h.to)
		}
	case callsOK:
		cause = fmt.Sprintf("%s's calls to %s carry trace context, but %s's spans for them never arrive: %s's sampler drops traces %s keeps (it does not follow the caller's decision), or its exporter drops spans", h.from, h.to, h.to, h.to, h.from)
		fix = fmt.Sprintf("sample by parent in %s, sdktrace.WithSampler(sdktrace.ParentBased(...)) (the vigil SDK's default), so it keeps the traces %s keeps; if it already does, look for export errors in %s's logs and for spans vigil refused in vigil_rejected_total{signal=\"traces\"}", h.to, h.from, h.to)
	case h.from == h.to:
		cause = fmt.Sprintf("spans of %s name a parent span of %s that never arrives: the parent is never ended (a span.End() missed on some path), so it is never exported, or its export is dropped", h.to, h.to)
		where := ""
		if op != "" {
			where = " (look for a path of " + op + " that returns without ending its span)"
		}
		fix = fmt.Sprintf("in %s, call defer span.End() right after every tracer.Start%s; if the SDK's export queue overflows (its logs say spans were dropped), raise the batch span processor's queue size, and check vigil_rejected_total{signal=\"traces\"}", h.to, where)
	case h.from == "":
		cause = fmt.Sprintf("%s receives trace context from a caller whose spans never arrive: the caller does not export its spans, or samples them out while %s keeps its own", h.to, h.to)
		fix = fmt.Sprintf("find %s's callers (its access logs, or the traceparent headers it receives) and make them export to vigil (OTEL_EXPORTER_OTLP_ENDPOINT); use the same parent-based sampler everywhere (sdktrace.ParentBased(sdktrace.TraceIDRatioBased(r)) in every service, the vigil SDK's default is ParentBased(AlwaysSample)) so that a trace is kept or dropped whole; if the callers are outside your system (browsers, a load balancer that adds traceparent), make %s start its own traces with a link to theirs (otelhttp.WithPublicEndpoint())", h.to, h.to)
	default:
		cause = fmt.Sprintf("%s's spans name a parent that never arrives, though they ran inside %s's: the service that called %s (%s, or one between them that sends no spans) propagates context but does not export those spans, or samples them out while %s keeps its own", h.to, h.from, h.to, h.from, h.to)
		fix = fmt.Sprintf("make every service between %s and %s export its spans to vigil (OTEL_EXPORTER_OTLP_ENDPOINT) and use the same parent-based sampler everywhere (sdktrace.ParentBased(...), the vigil SDK's default), so that a trace is kept or dropped whole", h.from, h.to)
	}
	return cause, fix
}
