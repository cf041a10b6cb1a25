package doctor

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage"
)

// A service whose clock runs minutes off its caller's stamps its spans
// minutes away from the calls that caused them: read by time, its children
// fall outside the spans read and look lost. So the propagation check
// measures each hop's clock offset from the spans that do link, and judges
// with every service's times moved onto one clock, after reading a range
// widened by the offsets.

// minClockOffset is the smallest offset corrected: below it the nesting
// tolerances absorb the difference, and the estimate of a healthy hop (a
// few network latencies of asymmetry) never reaches it. It is span_timing's
// default tolerance, so that what is corrected here is what span_timing
// names.
const minClockOffset = 50 * time.Millisecond

// maxClockOffset bounds the offsets corrected, and so how much wider the
// corrected read is: a clock hours off is beyond what a window of minutes
// can tell apart from unrelated traffic.
const maxClockOffset = time.Hour

// hopOffset is a hop's measured clock offset: how far the callee's clock
// runs ahead of the caller's (negative: behind), from how many linked pairs.
type hopOffset struct {
	offset time.Duration
	pairs  int
}

// offsetEstimate is what one linked pair says of the callee's clock offset,
// in nanoseconds, and whether it says anything.
//
//   - A client span and its server child bound the offset from both sides
//     (the server starts after the request left and ends before the answer
//     arrived); the midpoint of the two is the NTP estimate, exact when the
//     request and the answer take as long.
//   - Another synchronous parent (a server or internal span around a call
//     made without a client span) bounds it the same way but more loosely:
//     the value within the bounds nearest to no offset is taken.
//   - An asynchronous child (a consumer) only starts after its parent: the
//     offset is at most the start difference, and taken as that only when
//     it is negative, as no causal order explains a child starting first.
func offsetEstimate(p, ch *storage.SpanShape) (int64, bool) {
	if !ended(p) || !ended(ch) {
		return 0, false
	}
	hi := ch.Start - p.Start // the callee cannot start before its caller
	lo := ch.End - p.End     // nor end after a synchronous caller
	switch {
	case ch.Kind == ptrace.SpanKindServer && p.Kind == ptrace.SpanKindClient:
		return ch.Start/2 + ch.End/2 - p.Start/2 - p.End/2, true
	case ch.Kind == ptrace.SpanKindServer && p.Kind != ptrace.SpanKindProducer && lo <= hi:
		return max(lo, min(hi, 0)), true
	}
	return min(hi, 0), true
}

// measureOffsets returns the clock offset of every hop between two services
// with at least minPairs linked pairs in w: the median of the pairs'
// estimates.
func measureOffsets(w *spanWindow, minPairs int) map[hop]hopOffset {
	est := map[hop][]int64{}
	for i := range w.spans {
		ch := &w.spans[i]
		p := w.parent(ch)
		if p < 0 || w.spans[p].Service == ch.Service {
			continue
		}
		if e, ok := offsetEstimate(&w.spans[p], ch); ok {
			h := hop{w.spans[p].Service, ch.Service}
			est[h] = append(est[h], e)
		}
	}
	out := map[hop]hopOffset{}
	for h, es := range est {
		if len(es) < minPairs {
			continue
		}
		slices.Sort(es)
		out[h] = hopOffset{offset: time.Duration(es[len(es)/2]), pairs: len(es)}
	}
	return out
}

// serviceClocks places every service on one clock from the hops' offsets:
// it returns, per service, how far its clock runs ahead of the reference
// (the service with the most linked pairs in its part of the call graph),
// only for the services off by at least minClockOffset. Where offsets
// disagree around a cycle, the hop with more pairs wins.
func serviceClocks(offsets map[hop]hopOffset) map[string]time.Duration {
	// Edges by weight, heaviest first, so that each service is placed by
	// its best-measured hop.
	hops := slices.SortedFunc(maps.Keys(offsets), func(x, y hop) int {
		return cmp.Or(-cmp.Compare(offsets[x].pairs, offsets[y].pairs), cmp.Compare(x.from, y.from), cmp.Compare(x.to, y.to))
	})
	weight := map[string]int{}
	for _, h := range hops {
		weight[h.from] += offsets[h].pairs
		weight[h.to] += offsets[h].pairs
	}
	services := slices.SortedFunc(maps.Keys(weight), func(x, y string) int {
		return cmp.Or(-cmp.Compare(weight[x], weight[y]), cmp.Compare(x, y))
	})
	clock := map[string]time.Duration{}
	for _, root := range services {
		if _, ok := clock[root]; ok {
			continue
		}
		clock[root] = 0
		// Grow the component from root until no hop adds a service.
		for grown := true; grown; {
			grown = false
			for _, h := range hops {
				_, from := clock[h.from]
				_, to := clock[h.to]
				switch {
				case from && !to:
					clock[h.to] = clock[h.from] + offsets[h].offset
				case to && !from:
					clock[h.from] = clock[h.to] - offsets[h].offset
				default:
					continue
				}
				grown = true
			}
		}
	}
	for svc, d := range clock {
		if d.Abs() < minClockOffset {
			delete(clock, svc)
		} else {
			clock[svc] = max(-maxClockOffset, min(maxClockOffset, d))
		}
	}
	return clock
}

// correctedSpanWindow reads the spans again for the same judged window as
// w, over a range widened by the clocks' offsets, and moves every span of
// a service whose clock is off onto the reference clock, so that the
// children stamped minutes off are read and time nesting means what it
// means with sound clocks.
func correctedSpanWindow(ctx context.Context, r SpanShapeReader, w *spanWindow, now time.Time, grace time.Duration, limit int, clock map[string]time.Duration) (*spanWindow, error) {
	var ahead, behind time.Duration
	for _, d := range clock {
		ahead, behind = max(ahead, d), min(behind, d)
	}
	start := time.Unix(0, w.judgeStart).Add(-spanLookback + behind)
	spans, err := r.SpanShapes(ctx, storage.SpanShapeQuery{Start: start, End: now.Add(ahead), Limit: limit})
	if err != nil {
		return nil, fmt.Errorf("doctor: read span shapes around clock offsets: %w", err)
	}
	cut := len(spans) == limit
	var last int64
	if cut {
		last = slices.MaxFunc(spans, func(a, b storage.SpanShape) int { return cmp.Compare(a.Start, b.Start) }).Start
	}
	for i := range spans {
		if d := clock[spans[i].Service]; d != 0 {
			spans[i].Start -= int64(d)
			if spans[i].End != 0 {
				spans[i].End -= int64(d)
			}
		}
	}
	slices.SortStableFunc(spans, func(a, b storage.SpanShape) int { return cmp.Compare(a.Start, b.Start) })
	cw := &spanWindow{spans: spans, judgeStart: w.judgeStart, judgeEnd: w.judgeEnd, readStart: w.readStart}
	if cut {
		// The latest spans read are those of the clock furthest ahead:
		// judge only what every clock had time to send around.
		cw.judgeEnd = min(cw.judgeEnd, last-int64(ahead)+int64(behind)-grace.Nanoseconds())
		if cw.judgeEnd <= cw.judgeStart {
			return nil, fmt.Errorf("doctor: more than %d spans started between %s and %s: raise the check's span limit or shorten its window",
				limit, start.UTC().Format(time.RFC3339), now.Add(ahead).UTC().Format(time.RFC3339))
		}
	}
	cw.index()
	return cw, nil
}
