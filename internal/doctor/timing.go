package doctor

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
)

// TimingCheck finds spans whose times cannot be right (span_timing):
// children placed outside their parent beyond a tolerance, which between
// two services means their hosts' clocks disagree (subject "parent →
// child", with the median offset), and spans sent without an end, ending
// before they start or lasting absurdly long (subject "service operation").
//
// Only what cannot happen with sound clocks counts: a child starting before
// its parent, or, for a call (a client span's server child), a child no
// longer than its parent that ends after it. A server that outlives a
// client that gave up, a consumer running after its producer, and a
// goroutine outliving its handler all end late legitimately, and are longer
// than their parent or not calls.
type TimingCheck struct {
	Spans SpanShapeReader
	// Window is the time judged (5m if 0); it ends Grace ago (30s if 0).
	Window, Grace time.Duration
	// Tolerance is how far a child may stick out of its parent (50ms if 0).
	Tolerance time.Duration
	// MaxDuration is the longest believable span (1h if 0).
	MaxDuration time.Duration
	// MinSpans is the fewest children outside their parent a pair of
	// services needs to be reported (5 if 0), MinRatio the smallest share
	// of their parent-child pairs (0.1 if 0). MinBadSpans is the fewest
	// spans without a sound end an operation needs (3 if 0), so that a
	// one-off clock step is not reported.
	MinSpans    int
	MinRatio    float64
	MinBadSpans int
	// Limit caps the spans read (200000 if 0).
	Limit int
	Now   func() time.Time
}

// Name implements Check.
func (c TimingCheck) Name() string { return "timing" }

// Run implements Check.
func (c TimingCheck) Run(ctx context.Context) ([]Finding, error) {
	now := clockOf(c.Now)
	w, err := loadSpanWindow(ctx, c.Spans, now(), cmp.Or(c.Window, defaultSpanWindow), cmp.Or(c.Grace, defaultSpanGrace), cmp.Or(c.Limit, defaultSpanLimit))
	if err != nil {
		return nil, err
	}
	tol := cmp.Or(c.Tolerance, 50*time.Millisecond).Nanoseconds()
	maxDur := cmp.Or(c.MaxDuration, time.Hour)
	out := skewFindings(w, tol, cmp.Or(c.MinSpans, defaultMinSpans), cmp.Or(c.MinRatio, defaultMinRatio))
	return append(out, endFindings(w, maxDur, cmp.Or(c.MinBadSpans, 3))...), nil
}

type skewStats struct {
	pairs int
	// offsets are, for the children outside their parent, how far their
	// midpoint is from the parent's (between services: the clock offset
	// when calls take as long going as coming back) or, within a service,
	// how far their start is from the parent's.
	offsets []int64
	samples []string
}

func skewFindings(w *spanWindow, tol int64, minSpans int, minRatio float64) []Finding {
	byHop := map[hop]*skewStats{}
	for i := range w.spans {
		ch := &w.spans[i]
		p := w.parent(ch)
		if !w.judged(ch) || p < 0 || !ended(ch) || !ended(&w.spans[p]) {
			continue
		}
		pa := &w.spans[p]
		h := hop{pa.Service, ch.Service}
		st := byHop[h]
		if st == nil {
			st = &skewStats{}
			byHop[h] = st
		}
		st.pairs++
		outside := ch.Start < pa.Start-tol
		if !outside && h.from != h.to && pa.Kind == ptrace.SpanKindClient && ch.Kind == ptrace.SpanKindServer {
			outside = ch.End > pa.End+tol && ch.End-ch.Start <= pa.End-pa.Start+tol
		}
		if !outside {
			continue
		}
		off := ch.Start/2 + ch.End/2 - pa.Start/2 - pa.End/2
		if h.from == h.to {
			off = ch.Start - pa.Start
		}
		st.offsets = append(st.offsets, off)
		if s := ch.TraceID.String(); len(st.samples) < MaxSamples && !slices.Contains(st.samples, s) {
			st.samples = append(st.samples, s)
		}
	}
	var out []Finding
	for _, h := range slices.SortedFunc(maps.Keys(byHop), func(x, y hop) int {
		return cmp.Or(cmp.Compare(x.from, y.from), cmp.Compare(x.to, y.to))
	}) {
		st := byHop[h]
		n := len(st.offsets)
		ratio := float64(n) / float64(st.pairs)
		if n < minSpans || ratio < minRatio {
			continue
		}
		slices.Sort(st.offsets)
		offset := time.Duration(st.offsets[n/2])
		values := map[string]float64{"pairs": float64(st.pairs), "outside": float64(n), "ratio": ratio, "median_offset_seconds": offset.Seconds()}
		f := Finding{Code: "span_timing", Severity: Warning, Subject: h.subject(), Evidence: Evidence{Values: values, Window: w.window(), Samples: st.samples}}
		if h.from == h.to {
			f.Evidence.Summary = fmt.Sprintf("%d of %s's %d spans with a parent in %s (%.0f%%) start before their parent, by a median %s",
				n, h.to, st.pairs, h.to, 100*ratio, (-offset).Round(time.Millisecond))
			f.Cause = fmt.Sprintf("within one process a child cannot start before its parent: %s sets span timestamps by hand (trace.WithTimestamp) from another clock or in the wrong unit, or converts spans from another format wrongly", h.to)
			f.Fix = fmt.Sprintf("in %s, let the SDK take span times (drop trace.WithTimestamp), or pass times from the same clock as the parent's, as time.Time values", h.to)
			out = append(out, f)
			continue
		}
		dir := "ahead of"
		if offset < 0 {
			dir = "behind"
		}
		abs := roundOffset(offset.Abs())
		f.Evidence.Summary = fmt.Sprintf("%d of %s's %d spans called from %s (%.0f%%) lie outside the %s span that called them; %s's clock is about %s %s %s's",
			n, h.to, st.pairs, h.from, 100*ratio, h.from, h.to, abs, dir, h.from)
		f.Cause = fmt.Sprintf("the clocks of the hosts running %s and %s disagree by about %s, so %s's spans are drawn outside the calls that caused them and trace timings across the hop are wrong", h.from, h.to, abs, h.to)
		f.Fix = fmt.Sprintf("synchronise the clocks of %s's and %s's hosts with NTP (chrony or systemd-timesyncd against the same servers; for containers, the node's clock), and check the offset with chronyc tracking or timedatectl on both", h.from, h.to)
		out = append(out, f)
	}
	return out
}

// roundOffset rounds a clock offset to what its estimate can tell: a
// median of minutes is not known to the millisecond.
func roundOffset(d time.Duration) time.Duration {
	if d >= 10*time.Second {
		return d.Round(time.Second)
	}
	return d.Round(time.Millisecond)
}

type endStats struct {
	spans, unended, long int
	longest              time.Duration
	samples              []string
}

// opKey is one operation of one service.
type opKey struct{ service, name string }

func endFindings(w *spanWindow, maxDur time.Duration, minBad int) []Finding {
	byOp := map[opKey]*endStats{}
	for i := range w.spans {
		s := &w.spans[i]
		if !w.judged(s) {
			continue
		}
		k := opKey{s.Service, s.Name}
		st := byOp[k]
		if st == nil {
			st = &endStats{}
			byOp[k] = st
		}
		st.spans++
		switch d := time.Duration(s.End - s.Start); {
		case !ended(s):
			st.unended++
		case d > maxDur:
			st.long++
			st.longest = max(st.longest, d)
		default:
			continue
		}
		if id := s.TraceID.String(); len(st.samples) < MaxSamples && !slices.Contains(st.samples, id) {
			st.samples = append(st.samples, id)
		}
	}
	var out []Finding
	for _, k := range slices.SortedFunc(maps.Keys(byOp), func(x, y opKey) int {
		return cmp.Or(cmp.Compare(x.service, y.service), cmp.Compare(x.name, y.name))
	}) {
		st := byOp[k]
		if st.unended+st.long < minBad {
			continue
		}
		f := Finding{
			Code: "span_timing", Severity: Warning, Subject: k.service + " " + k.name,
			Evidence: Evidence{
				Values:  map[string]float64{"spans": float64(st.spans), "without_end": float64(st.unended), "too_long": float64(st.long)},
				Window:  w.window(),
				Samples: st.samples,
			},
		}
		if st.unended >= st.long {
			f.Evidence.Summary = fmt.Sprintf("%d of its %d spans came without an end time, or one before their start", st.unended, st.spans)
			f.Cause = fmt.Sprintf("%s exports %q spans that were never ended properly: a span sent before End is called (a hand-written exporter or converter), or an end timestamp set by hand that is zero or earlier than the start", k.service, k.name)
			f.Fix = fmt.Sprintf("in %s, end every span exactly once with defer span.End() right after tracer.Start; if times are set by hand (trace.WithTimestamp), pass the end time from the same clock as the start", k.service)
		} else {
			f.Evidence.Values["longest_seconds"] = st.longest.Seconds()
			f.Evidence.Summary = fmt.Sprintf("%d of its %d spans lasted more than %s (the longest %s), though they started in the last minutes", st.long, st.spans, maxDur, st.longest.Round(time.Second))
			f.Cause = fmt.Sprintf("the end timestamps of %s's %q spans are wrong: set by hand in the wrong unit (milliseconds given as nanoseconds, seconds as milliseconds) or from another clock", k.service, k.name)
			f.Fix = fmt.Sprintf("in %s, let the SDK take span times (drop trace.WithTimestamp at the end of %q), or pass the end as a time.Time from the same clock as the start", k.service, k.name)
		}
		out = append(out, f)
	}
	return out
}
