package doctor

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage"
)

// ProfileIDAttribute is the span attribute otel-profiling-go sets on the
// spans whose samples it labels: its value is the span id the samples'
// pprof label span_id carries.
const ProfileIDAttribute = "pyroscope.profile.id"

// ProfiledSpanReader finds a few traces of a service and reads their
// spans; storage.SpanLogStore satisfies it.
type ProfiledSpanReader interface {
	storage.REDReader
	FindTraces(ctx context.Context, q storage.TraceQuery) ([]storage.TraceSummary, error)
	GetTrace(ctx context.Context, id pcommon.TraceID) (ptrace.Traces, error)
}

// ProfilesCheck finds the seams between traces and continuous profiles:
//
//   - profile_span_unlinked: a service's spans carry pyroscope.profile.id,
//     so the tracer is wrapped, but no profile sample carries the span ids
//     (the profiler does not upload, or uploads elsewhere);
//   - profile_service_mismatch: a service's profiles arrive under another
//     name than its spans (payments-svc, payments.cpu), or a service sends
//     profiles and no spans at all;
//   - profile_stale: a traced service sent profiles steadily earlier in
//     the window but none lately.
//
// Its cost is bounded: per service at most Traces traces are read and at
// most Probes span-filtered merges run, each over the minutes around one
// span, and at most MaxServices services are judged, the busiest first.
type ProfilesCheck struct {
	Spans    ProfiledSpanReader
	Profiles storage.ProfileReader
	// Window is the time looked at (15m if 0); it ends Grace ago (1m if
	// 0), since a profile arrives one upload interval after its samples.
	Window, Grace time.Duration
	// StaleAfter is how long without a profile makes a service stale
	// (2m if 0: eight of pyroscope-go's 15-second uploads).
	StaleAfter time.Duration
	// MinSpans is the fewest requests that make a service worth judging
	// (20 if 0).
	MinSpans int64
	// MaxServices bounds the services whose spans are sampled (20 if 0);
	// Traces the traces read per service (5 if 0); Probes the span ids
	// looked up per service (3 if 0).
	MaxServices, Traces, Probes int
	Now                         func() time.Time
}

// Name implements Check.
func (c ProfilesCheck) Name() string { return "profiles" }

// profiledSpan is a span that says its samples are labelled.
type profiledSpan struct {
	trace      pcommon.TraceID
	profileID  string
	start, end time.Time
}

// Run implements Check.
func (c ProfilesCheck) Run(ctx context.Context) ([]Finding, error) {
	window := cmp.Or(c.Window, 15*time.Minute)
	grace := cmp.Or(c.Grace, time.Minute)
	staleAfter := cmp.Or(c.StaleAfter, 2*time.Minute)
	end := clockOf(c.Now)().Add(-grace)
	start := end.Add(-window)
	traced, err := tracedServices(ctx, c.Spans, start, end, 1)
	if err != nil {
		return nil, err
	}
	svcs, err := c.Profiles.ProfileServices(ctx, start, end)
	if err != nil {
		return nil, fmt.Errorf("doctor: profiled services: %w", err)
	}
	// profiled holds each profiled service, and cpu whether it sends CPU
	// profiles, whose samples the links are looked for in.
	profiled, cpu := map[string]bool{}, map[string]bool{}
	for _, s := range svcs {
		profiled[s.Service] = true
		cpu[s.Service] = slices.Contains(s.Kinds, storage.ProfileCPU)
	}
	var out []Finding
	// explained are the traced services a finding already names, with
	// the index of a mismatch's finding.
	explained := map[string]int{}
	anyBoth := false
	for svc := range profiled {
		if traced[svc] > 0 {
			anyBoth = true
		}
	}
	var untraced []string
	for _, p := range slices.Sorted(maps.Keys(profiled)) {
		if traced[p] > 0 {
			continue
		}
		if t := closestTraced(p, traced, profiled); t != "" {
			// Two spellings of one service (payments-svc and payments.cpu)
			// make one finding, naming both.
			if i, ok := explained[t]; ok {
				out[i].Evidence.Samples = append(out[i].Evidence.Samples, fmt.Sprintf("profiles service=%q", p))
				continue
			}
			explained[t] = len(out)
			out = append(out, mismatchFinding(t, p, traced[t], window))
			continue
		}
		untraced = append(untraced, p)
	}
	if anyBoth {
		for _, p := range untraced {
			out = append(out, Finding{
				Code: "profile_service_mismatch", Severity: Info, Subject: p,
				Evidence: Evidence{
					Summary: "it sent profiles but no spans, and no traced service has a similar name, while " + sendBoth(countBoth(profiled, traced)),
					Values:  map[string]float64{"spans": 0},
					Window:  lastWindow(window),
				},
				Cause: fmt.Sprintf("%s is profiled but not traced, or its spans are sent under a name nothing relates to %q, so its profiles link to no span", p, p),
				Fix:   fmt.Sprintf("if %s is traced, give the profiler and the tracer one name (pyroscope.Config.ApplicationName and OTEL_SERVICE_NAME, or the vigil SDK's vigil.Config.ServiceName for both); if it is not, this is only a note", p),
			})
		}
	}
	minSpans := cmp.Or(c.MinSpans, 20)
	stale, err := c.stale(ctx, traced, profiled, end, window, staleAfter, minSpans)
	if err != nil {
		return nil, err
	}
	out = append(out, stale...)
	for _, f := range stale {
		// Its recent spans have no samples because no profile arrives.
		explained[f.Subject] = -1
	}
	busy := make([]string, 0, len(traced))
	for svc, n := range traced {
		if _, done := explained[svc]; n >= minSpans && !done {
			busy = append(busy, svc)
		}
	}
	slices.SortFunc(busy, func(a, b string) int { return cmp.Or(cmp.Compare(traced[b], traced[a]), cmp.Compare(a, b)) })
	busy = busy[:min(len(busy), cmp.Or(c.MaxServices, 20))]
	for _, svc := range busy {
		if profiled[svc] && !cpu[svc] {
			continue // no CPU profiles: nothing to look for the spans in
		}
		f, err := c.judgeLinks(ctx, svc, traced, profiled, start, end, window)
		if err != nil {
			return nil, err
		}
		if f != nil {
			out = append(out, *f)
		}
	}
	return out, nil
}

// judgeLinks samples the service's spans that carry pyroscope.profile.id
// and looks for profile samples with their span ids.
func (c ProfilesCheck) judgeLinks(ctx context.Context, svc string, traced map[string]int64, profiled map[string]bool, start, end time.Time, window time.Duration) (*Finding, error) {
	spans, err := c.profiledSpans(ctx, svc, start, end)
	if err != nil || len(spans) == 0 {
		return nil, err
	}
	// The samples are the traces of the spans, each once, longest span
	// first.
	samples := make([]string, 0, len(spans))
	for _, s := range spans {
		if id := s.trace.String(); !slices.Contains(samples, id) {
			samples = append(samples, id)
		}
	}
	values := map[string]float64{"requests": float64(traced[svc]), "profiled_spans_sampled": float64(len(spans))}
	if !profiled[svc] {
		// A profile is filed under a service only when some CPU sample
		// falls in its code: a service whose requests take little CPU,
		// sharing its process's profiler with others (as the vigil SDK's
		// services of one process do, labelling their samples
		// service_name), may have none. Unless its sampled spans lasted
		// long enough to be sampled, the missing profile is only a
		// possibility.
		var total time.Duration
		for _, s := range spans {
			total += s.end.Sub(s.start)
		}
		values["sampled_seconds"] = total.Seconds()
		sev := Info
		if total >= time.Second {
			sev = Warning
		}
		return &Finding{
			Code: "profile_span_unlinked", Severity: sev, Subject: svc,
			Evidence: Evidence{
				Summary: fmt.Sprintf("its spans carry %s (%d spans in the %d traces sampled), but vigil holds no profile of %s", ProfileIDAttribute, len(spans), len(samples), svc),
				Values:  values, Window: lastWindow(window), Samples: samples,
			},
			Cause: fmt.Sprintf("the tracer is wrapped for profiling (otel-profiling-go, or the vigil SDK's Profiling option), but the profiler does not upload to vigil: it was not started, its uploads fail, or they go to another server or under another application name than %q", svc),
			Fix:   fmt.Sprintf("start the profiler with ServerAddress set to vigil's web address and ApplicationName %q (pyroscope.Start, or vigil.Config{Profiling: vigil.Profiling{Enabled: true, ServerAddress: ...}}); look for upload errors in %s's logs and for profiles vigil refused in vigil_rejected_total{signal=\"profiles\"}", svc, svc),
		}, nil
	}
	probes := cmp.Or(c.Probes, 3)
	for _, s := range spans[:min(len(spans), probes)] {
		m, err := c.Profiles.MergeProfiles(ctx, storage.ProfileQuery{
			Service: svc, Kind: storage.ProfileCPU, SampleTypes: []string{"cpu", "samples"},
			// Clocks and upload ranges are not exact: look a little
			// around the span.
			Start: s.start.Add(-30 * time.Second), End: s.end.Add(30 * time.Second),
			SpanID: s.profileID,
		})
		if err != nil {
			return nil, fmt.Errorf("doctor: profile of span %s: %w", s.profileID, err)
		}
		if len(m.Stacks) > 0 {
			return nil, nil
		}
	}
	probed := min(len(spans), probes)
	probedTraces := make([]string, 0, probed)
	for _, s := range spans[:probed] {
		if id := s.trace.String(); !slices.Contains(probedTraces, id) {
			probedTraces = append(probedTraces, id)
		}
	}
	values["spans_probed"] = float64(probed)
	var total time.Duration
	for _, s := range spans[:probed] {
		total += s.end.Sub(s.start)
	}
	values["probed_seconds"] = total.Seconds()
	// Spans that mostly wait (on a database, a peer) take no CPU samples:
	// unless the probed spans lasted long enough to be sampled, this is
	// only a possibility.
	sev := Info
	if total >= time.Second {
		sev = Warning
	}
	return &Finding{
		Code: "profile_span_unlinked", Severity: sev, Subject: svc,
		Evidence: Evidence{
			Summary: fmt.Sprintf("vigil holds CPU profiles of %s, but none of their samples carries the span id of the %d longest spans sampled with %s (%.1fs in all)", svc, probed, ProfileIDAttribute, total.Seconds()),
			Values:  values, Window: lastWindow(window), Samples: probedTraces,
		},
		Cause: fmt.Sprintf("the profiles that reach vigil as %q are not the ones the wrapped tracer labels: another process (or a second profiler) uploads under that name, the labelled profiler uploads to another server, or the spans spent their time waiting rather than on CPU", svc),
		Fix:   fmt.Sprintf("in %s, start one profiler (pyroscope.Start with ApplicationName %q and vigil's address, or the vigil SDK's Profiling option) in the same process as the tracer provider wrapped by otelpyroscope.NewTracerProvider; check with /api/v1/profiles/top?service=%s&span_id=<a sampled span's %s>", svc, svc, svc, ProfileIDAttribute),
	}, nil
}

// profiledSpans reads up to Traces recent traces of svc and returns its
// spans that carry ProfileIDAttribute, the longest first.
func (c ProfilesCheck) profiledSpans(ctx context.Context, svc string, start, end time.Time) ([]profiledSpan, error) {
	sums, err := c.Spans.FindTraces(ctx, storage.TraceQuery{Service: svc, Start: start, End: end, Limit: cmp.Or(c.Traces, 5)})
	if err != nil {
		return nil, fmt.Errorf("doctor: traces of %s: %w", svc, err)
	}
	var out []profiledSpan
	for _, sum := range sums {
		td, err := c.Spans.GetTrace(ctx, sum.TraceID)
		if err != nil {
			continue // expired since it was found
		}
		for _, rs := range td.ResourceSpans().All() {
			if name, _ := rs.Resource().Attributes().Get("service.name"); name.AsString() != svc {
				continue
			}
			for _, ss := range rs.ScopeSpans().All() {
				for _, sp := range ss.Spans().All() {
					v, ok := sp.Attributes().Get(ProfileIDAttribute)
					if !ok || v.AsString() == "" {
						continue
					}
					out = append(out, profiledSpan{
						trace: sum.TraceID, profileID: v.AsString(),
						start: sp.StartTimestamp().AsTime(), end: sp.EndTimestamp().AsTime(),
					})
				}
			}
		}
	}
	slices.SortStableFunc(out, func(a, b profiledSpan) int {
		return cmp.Compare(b.end.Sub(b.start), a.end.Sub(a.start))
	})
	// A child span may carry its local root's id: probe each id once.
	seen := map[string]bool{}
	return slices.DeleteFunc(out, func(s profiledSpan) bool {
		dup := seen[s.profileID]
		seen[s.profileID] = true
		return dup
	}), nil
}

// stale finds traced services that sent profiles in the window but none
// in its last staleAfter.
func (c ProfilesCheck) stale(ctx context.Context, traced map[string]int64, profiled map[string]bool, end time.Time, window, staleAfter time.Duration, minSpans int64) ([]Finding, error) {
	if len(profiled) == 0 {
		return nil, nil
	}
	recent, err := c.Profiles.ProfileServices(ctx, end.Add(-staleAfter), end)
	if err != nil {
		return nil, fmt.Errorf("doctor: recently profiled services: %w", err)
	}
	have := map[string]bool{}
	for _, s := range recent {
		have[s.Service] = true
	}
	recentTraced, err := tracedServices(ctx, c.Spans, end.Add(-staleAfter), end, 1)
	if err != nil {
		return nil, err
	}
	var out []Finding
	var steady map[string]bool
	for _, svc := range slices.Sorted(maps.Keys(profiled)) {
		// A service that stopped altogether is not the profiler's fault.
		if have[svc] || traced[svc] < minSpans || recentTraced[svc] == 0 {
			continue
		}
		if steady == nil {
			if steady, err = c.steadilyProfiled(ctx, end.Add(-window), end.Add(-staleAfter), staleAfter); err != nil {
				return nil, err
			}
		}
		// A gap is news only in a service whose profiles came in every
		// stretch before it. A cheap service sharing its process's
		// profiler (the demo's catalog) has CPU samples of its own only
		// now and then, and its gaps are its normal.
		if !steady[svc] {
			continue
		}
		out = append(out, Finding{
			Code: "profile_stale", Severity: Warning, Subject: svc,
			Evidence: Evidence{
				Summary: fmt.Sprintf("it sent profiles earlier in the last %s but none in the last %s, while its spans still arrive (%d requests since)", model.Duration(window), model.Duration(staleAfter), recentTraced[svc]),
				Values:  map[string]float64{"requests_since": float64(recentTraced[svc]), "stale_seconds": staleAfter.Seconds()},
				Window:  lastWindow(window),
			},
			Cause: fmt.Sprintf("%s's profiler stopped uploading while the service runs on: it was stopped (profiler.Stop), its uploads fail (vigil refuses them, or cannot be reached), or the instances running now were started without it", svc),
			Fix:   fmt.Sprintf("look for upload errors in %s's logs and for refused profiles in vigil_rejected_total{signal=\"profiles\"}; make sure every instance starts the profiler at startup and keeps it until exit", svc),
		})
	}
	return out, nil
}

// steadilyProfiled names the services that, over [from, to) cut into
// stretches of length step, sent profiles in every stretch between the
// first and the last they sent in.
func (c ProfilesCheck) steadilyProfiled(ctx context.Context, from, to time.Time, step time.Duration) (map[string]bool, error) {
	// gap: the service was absent from a stretch after its first, which
	// is a hole only if it is seen again later.
	seen, gap, holed := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for at := from; at.Before(to); at = at.Add(step) {
		until := at.Add(step)
		if until.After(to) {
			until = to
		}
		svcs, err := c.Profiles.ProfileServices(ctx, at, until)
		if err != nil {
			return nil, fmt.Errorf("doctor: profiled services from %s: %w", at.Format(time.RFC3339), err)
		}
		now := map[string]bool{}
		for _, s := range svcs {
			now[s.Service] = true
			seen[s.Service] = true
			if gap[s.Service] {
				holed[s.Service] = true
			}
		}
		for svc := range seen {
			if !now[svc] {
				gap[svc] = true
			}
		}
	}
	steady := map[string]bool{}
	for svc := range seen {
		steady[svc] = !holed[svc]
	}
	return steady, nil
}

func sendBoth(n int) string {
	if n == 1 {
		return "another service sends both"
	}
	return fmt.Sprintf("%d other services send both", n)
}

func countBoth(profiled map[string]bool, traced map[string]int64) int {
	n := 0
	for p := range profiled {
		if traced[p] > 0 {
			n++
		}
	}
	return n
}

// mismatchFinding names a traced service whose profiles arrive as prof.
func mismatchFinding(svc, prof string, requests int64, window time.Duration) Finding {
	fix := fmt.Sprintf("use one name: set pyroscope.Config.ApplicationName to %q, or give the tracer the profiler's name (OTEL_SERVICE_NAME=%s, or the vigil SDK's vigil.Config.ServiceName, which its Profiling option uses for both)", svc, prof)
	if stripKindSuffix(prof) != prof {
		fix = fmt.Sprintf("set pyroscope.Config.ApplicationName to %q, without the kind suffix: vigil tells a profile's kind from its sample types, and the application name must be the traces' service.name", svc)
	}
	return Finding{
		Code: "profile_service_mismatch", Severity: Warning, Subject: svc,
		Evidence: Evidence{
			Summary: fmt.Sprintf("its spans arrive as service %q (%d requests) but its profiles as %q, which has no spans", svc, requests, prof),
			Values:  map[string]float64{"requests": float64(requests)},
			Window:  lastWindow(window),
			Samples: []string{fmt.Sprintf("service.name=%q", svc), fmt.Sprintf("profiles service=%q", prof)},
		},
		Cause: fmt.Sprintf("the profiler's application name (%q) differs from the tracer's service.name (%q), so a span's profile, looked up by service, is never found", prof, svc),
		Fix:   fix,
	}
}

// closestTraced returns the traced service that profile name p most
// likely means, or "": the same name once normalised (payments-svc,
// Payments), the name with a profile kind suffix (payments.cpu), a name
// it extends at a separator (payments-api for payments), or a typo of it
// (one edit, two for names of eight letters or more). Names that are
// themselves profiled are never taken.
func closestTraced(p string, traced map[string]int64, profiled map[string]bool) string {
	bare := stripKindSuffix(p)
	np := normalName(bare)
	if np == "" {
		return ""
	}
	best, bestRank := "", 4
	for _, t := range slices.Sorted(maps.Keys(traced)) {
		if profiled[t] {
			continue
		}
		nt := normalName(t)
		rank := 4
		switch {
		case nt == np:
			rank = 0
		case extendsAtSeparator(strings.ToLower(bare), strings.ToLower(t)) || extendsAtSeparator(strings.ToLower(t), strings.ToLower(bare)):
			rank = 1
		case len(np) >= 4 && len(nt) >= 4 && editDistance(np, nt) <= 1,
			len(np) >= 8 && len(nt) >= 8 && editDistance(np, nt) <= 2:
			rank = 2
		}
		if rank < bestRank {
			best, bestRank = t, rank
		}
	}
	return best
}

// profileKindSuffixes are the suffixes Pyroscope application names carry
// for the kind (payments.cpu), which vigil strips at ingest only when they
// are the last part of the name.
var profileKindSuffixes = []string{".cpu", ".alloc_objects", ".alloc_space", ".inuse_objects", ".inuse_space", ".goroutines", ".goroutine", ".mutex", ".block", ".itimer", ".wall"}

func stripKindSuffix(s string) string {
	for _, suf := range profileKindSuffixes {
		if t, ok := strings.CutSuffix(s, suf); ok && t != "" {
			return stripKindSuffix(t)
		}
	}
	return s
}

// extendsAtSeparator reports whether long is short followed by a
// separator and more (payments-api, payments.eu for payments).
func extendsAtSeparator(long, short string) bool {
	rest, ok := strings.CutPrefix(long, short)
	return ok && len(rest) > 1 && strings.ContainsRune("-_./:", rune(rest[0]))
}
