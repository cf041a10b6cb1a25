package doctor

import (
	"context"
	"encoding/binary"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/memory"
	"github.com/vigil-observability/vigil/internal/storage/storagetest"
)

// profWorld is a span store and a profile store filled like a profiled
// service fills them: a request every 5 seconds, and a CPU profile every
// 15 seconds.
type profWorld struct {
	t     *testing.T
	spans *memory.Store
	profs *memory.ProfileStore
	// ids are each service's span ids, by span start.
	ids  map[string]map[time.Time]string
	next uint64
}

func newProfWorld(t *testing.T) *profWorld {
	w := &profWorld{t: t, spans: memory.New(), profs: memory.NewProfileStore(), ids: map[string]map[time.Time]string{}}
	t.Cleanup(func() { w.spans.Close(); w.profs.Close() })
	return w
}

// traced writes a server span of svc lasting dur, and a child span, every
// 5 seconds from `from` to `to` before testNow, both marked with the
// server span's id as pyroscope.profile.id when wrapped is set.
func (w *profWorld) traced(svc string, from, to, dur time.Duration, wrapped bool) {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", svc)
	ss := rs.ScopeSpans().AppendEmpty()
	if w.ids[svc] == nil {
		w.ids[svc] = map[time.Time]string{}
	}
	for at := testNow.Add(-from); at.Before(testNow.Add(-to)); at = at.Add(5 * time.Second) {
		w.next++
		var tid pcommon.TraceID
		var sid pcommon.SpanID
		binary.BigEndian.PutUint64(tid[8:], w.next)
		binary.BigEndian.PutUint64(sid[:], w.next)
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(tid)
		sp.SetSpanID(sid)
		sp.SetName("POST /charge")
		sp.SetKind(ptrace.SpanKindServer)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(at))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(at.Add(dur)))
		// Its child, as otel-profiling-go marks it: with the root's id.
		child := ss.Spans().AppendEmpty()
		child.SetTraceID(tid)
		child.SetSpanID(pcommon.SpanID{0xc0, byte(w.next >> 8), byte(w.next)})
		child.SetParentSpanID(sid)
		child.SetName("charge card")
		child.SetKind(ptrace.SpanKindInternal)
		child.SetStartTimestamp(pcommon.NewTimestampFromTime(at.Add(dur / 4)))
		child.SetEndTimestamp(pcommon.NewTimestampFromTime(at.Add(dur / 2)))
		if wrapped {
			sp.Attributes().PutStr(ProfileIDAttribute, sid.String())
			child.Attributes().PutStr(ProfileIDAttribute, sid.String())
		}
		w.ids[svc][at] = sid.String()
	}
	if err := w.spans.WriteTraces(context.Background(), td); err != nil {
		w.t.Fatal(err)
	}
}

// profiled writes a CPU profile (or one of kind[0]) of app every 15
// seconds from `from` to `to` before testNow; when linkTo names a service,
// each profile's samples carry the span ids of that service's spans it
// covers.
func (w *profWorld) profiled(app string, from, to time.Duration, linkTo string, kind ...string) {
	var ps []storage.Profile
	for at := testNow.Add(-from); at.Before(testNow.Add(-to)); at = at.Add(15 * time.Second) {
		if len(kind) > 0 && kind[0] == storage.ProfileMemory {
			ps = append(ps, storage.Profile{
				Service: app, Kind: storage.ProfileMemory, Start: at, End: at.Add(15 * time.Second),
				Data: storagetest.PprofBytes(w.t, []string{"alloc_objects", "alloc_space", "inuse_objects", "inuse_space"},
					storagetest.ProfileSample{Stack: []string{"main.cache"}, Values: []int64{1, 4096, 1, 4096}}),
			})
			continue
		}
		samples := []storagetest.ProfileSample{{Stack: []string{"runtime.gcBgMarkWorker"}, Values: []int64{1, 10_000_000}}}
		for start, id := range w.ids[linkTo] {
			if !start.Before(at) && start.Before(at.Add(15*time.Second)) {
				samples = append(samples, storagetest.ProfileSample{Stack: []string{"main.charge", "main.handle"}, Values: []int64{3, 30_000_000}, SpanID: id})
			}
		}
		ps = append(ps, storage.Profile{
			Service: app, Kind: storage.ProfileCPU, Start: at, End: at.Add(15 * time.Second),
			Data: storagetest.PprofBytes(w.t, []string{"samples", "cpu"}, samples...),
		})
	}
	if err := w.profs.WriteProfiles(context.Background(), ps); err != nil {
		w.t.Fatal(err)
	}
}

func TestProfilesCheck(t *testing.T) {
	const long, short = 2 * time.Second, 5 * time.Millisecond
	tests := []struct {
		scenario string
		build    func(w *profWorld)
		want     []string
		// severity of the first finding, when set.
		severity Severity
		// text is found in the first finding's summary, cause, fix or
		// samples.
		text []string
	}{
		{
			scenario: "healthy: payments is profiled and its spans link to samples",
			build: func(w *profWorld) {
				w.traced("payments", 20*time.Minute, 0, long, true)
				w.profiled("payments", 20*time.Minute, 0, "payments")
				w.traced("catalog", 20*time.Minute, 0, short, false)
			},
		},
		{
			scenario: "healthy: spans are not wrapped, profiles arrive unlabelled",
			build: func(w *profWorld) {
				w.traced("payments", 20*time.Minute, 0, long, false)
				w.profiled("payments", 20*time.Minute, 0, "")
			},
		},
		{
			scenario: "healthy: the tracer is wrapped but only heap profiles are sent",
			build: func(w *profWorld) {
				w.traced("payments", 20*time.Minute, 0, long, true)
				w.profiled("payments", 20*time.Minute, 0, "", storage.ProfileMemory)
			},
		},
		{
			scenario: "healthy: profiles only, nothing is traced",
			build: func(w *profWorld) {
				w.profiled("batch", 20*time.Minute, 0, "")
				w.profiled("payments", 20*time.Minute, 0, "")
			},
		},
		{
			scenario: "healthy: a profiled service stopped altogether",
			build: func(w *profWorld) {
				w.traced("payments", 20*time.Minute, 0, long, true)
				w.profiled("payments", 20*time.Minute, 0, "payments")
				w.traced("worker", 20*time.Minute, 6*time.Minute, long, true)
				w.profiled("worker", 20*time.Minute, 6*time.Minute, "worker")
			},
		},
		{
			scenario: "the tracer is wrapped but the profiler does not upload",
			build: func(w *profWorld) {
				w.traced("payments", 20*time.Minute, 0, long, true)
				w.traced("catalog", 20*time.Minute, 0, long, true)
				w.profiled("catalog", 20*time.Minute, 0, "catalog")
			},
			want:     []string{"profile_span_unlinked payments"},
			severity: Warning,
			text:     []string{"no profile of payments", "ServerAddress"},
		},
		{
			scenario: "a cheap service sharing its process's profiler has no samples of its own",
			build: func(w *profWorld) {
				w.traced("payments", 20*time.Minute, 0, long, true)
				w.profiled("payments", 20*time.Minute, 0, "payments")
				w.traced("catalog", 20*time.Minute, 0, short, true)
			},
			want:     []string{"profile_span_unlinked catalog"},
			severity: Info,
			text:     []string{"no profile of catalog"},
		},
		{
			scenario: "profiles arrive as payments, but from a process the tracer does not label",
			build: func(w *profWorld) {
				w.traced("payments", 20*time.Minute, 0, long, true)
				w.profiled("payments", 20*time.Minute, 0, "")
			},
			want:     []string{"profile_span_unlinked payments"},
			severity: Warning,
			text:     []string{"none of their samples", "otelpyroscope.NewTracerProvider"},
		},
		{
			scenario: "short spans without samples are only a possibility",
			build: func(w *profWorld) {
				w.traced("payments", 20*time.Minute, 0, short, true)
				w.profiled("payments", 20*time.Minute, 0, "")
			},
			want:     []string{"profile_span_unlinked payments"},
			severity: Info,
			text:     []string{"waiting rather than on CPU"},
		},
		{
			scenario: "profiles arrive as payments-svc",
			build: func(w *profWorld) {
				w.traced("payments", 20*time.Minute, 0, long, true)
				w.profiled("payments-svc", 20*time.Minute, 0, "payments")
				w.traced("orders", 20*time.Minute, 0, long, false)
			},
			want:     []string{"profile_service_mismatch payments"},
			severity: Warning,
			text:     []string{`"payments-svc"`, `ApplicationName to "payments"`},
		},
		{
			scenario: "the application name keeps a .cpu suffix",
			build: func(w *profWorld) {
				w.traced("payments", 20*time.Minute, 0, long, true)
				w.profiled("payments.cpu.cpu", 20*time.Minute, 0, "payments")
			},
			want: []string{"profile_service_mismatch payments"},
			text: []string{"without the kind suffix"},
		},
		{
			scenario: "two instances upload under two wrong spellings",
			build: func(w *profWorld) {
				w.traced("payments", 20*time.Minute, 0, long, true)
				w.profiled("payments-svc", 20*time.Minute, 0, "payments")
				w.profiled("payments.cpu", 20*time.Minute, 0, "payments")
			},
			want: []string{"profile_service_mismatch payments"},
			text: []string{`service="payments-svc"`, `service="payments.cpu"`},
		},
		{
			scenario: "a typo in the application name",
			build: func(w *profWorld) {
				w.traced("payments", 20*time.Minute, 0, long, false)
				w.profiled("paymnets", 20*time.Minute, 0, "")
			},
			want: []string{"profile_service_mismatch payments"},
		},
		{
			scenario: "a service sends profiles and no spans while others send both",
			build: func(w *profWorld) {
				w.traced("payments", 20*time.Minute, 0, long, true)
				w.profiled("payments", 20*time.Minute, 0, "payments")
				w.profiled("ledger", 20*time.Minute, 0, "")
			},
			want:     []string{"profile_service_mismatch ledger"},
			severity: Info,
		},
		{
			scenario: "the profiler stopped while the service runs on",
			build: func(w *profWorld) {
				w.traced("payments", 20*time.Minute, 0, long, true)
				w.profiled("payments", 20*time.Minute, 6*time.Minute, "payments")
			},
			want:     []string{"profile_stale payments"},
			severity: Warning,
			text:     []string{"none in the last 2m", "profiler.Stop"},
		},
		{
			scenario: "a cheap service sharing its process's profiler has samples only now and then",
			build: func(w *profWorld) {
				w.traced("payments", 20*time.Minute, 0, long, true)
				w.profiled("payments", 20*time.Minute, 0, "payments")
				w.traced("catalog", 20*time.Minute, 0, short, false)
				// A profile of its own at 14, 10 and 5 minutes ago:
				// gaps longer than the stale threshold all along.
				for _, ago := range []time.Duration{14 * time.Minute, 10 * time.Minute, 5 * time.Minute} {
					w.profiled("catalog", ago, ago-15*time.Second, "catalog")
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			w := newProfWorld(t)
			tt.build(w)
			got, err := ProfilesCheck{Spans: w.spans, Profiles: w.profs, Now: func() time.Time { return testNow }}.Run(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			expectFindings(t, got, tt.want...)
			for _, f := range got {
				if f.Cause == "" || f.Fix == "" || f.Evidence.Summary == "" || f.Evidence.Window == "" || len(f.Evidence.Values) == 0 || len(f.Evidence.Samples) > MaxSamples {
					t.Errorf("incomplete finding %+v", f)
				}
				if distinct := slices.Compact(slices.Sorted(slices.Values(f.Evidence.Samples))); len(distinct) != len(f.Evidence.Samples) {
					t.Errorf("repeated samples %v", f.Evidence.Samples)
				}
				t.Logf("%s %s %s: %s\n  cause %s\n  fix %s\n  e.g. %v", f.Severity, f.Code, f.Subject, f.Evidence.Summary, f.Cause, f.Fix, f.Evidence.Samples)
			}
			if len(got) == 0 {
				return
			}
			if tt.severity != "" && got[0].Severity != tt.severity {
				t.Errorf("severity %s, want %s", got[0].Severity, tt.severity)
			}
			all := got[0].Evidence.Summary + " " + got[0].Cause + " " + got[0].Fix + " " + strings.Join(got[0].Evidence.Samples, " ")
			for _, s := range tt.text {
				if !strings.Contains(all, s) {
					t.Errorf("finding lacks %q:\n%s", s, all)
				}
			}
		})
	}
}

// TestProfilesCheckBoundsItsReads pins the cost: however many traced and
// profiled services, a run reads at most Traces traces and runs at most
// Probes span-filtered merges per service, for MaxServices services.
func TestProfilesCheckBoundsItsReads(t *testing.T) {
	w := newProfWorld(t)
	for _, svc := range []string{"a-svc", "b-svc", "c-svc", "d-svc"} {
		w.traced(svc, 20*time.Minute, 0, time.Second, true)
		w.profiled(svc, 20*time.Minute, 0, "")
	}
	spans := &countingProfiledSpans{ProfiledSpanReader: w.spans}
	profs := &countingProfiles{ProfileReader: w.profs}
	got, err := ProfilesCheck{Spans: spans, Profiles: profs, MaxServices: 3, Traces: 4, Probes: 2, Now: func() time.Time { return testNow }}.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Errorf("%d findings, want one for each of the 3 services judged", len(got))
	}
	if spans.gets > 3*4 || spans.finds > 3 {
		t.Errorf("%d searches and %d traces read, want at most 3 and 12", spans.finds, spans.gets)
	}
	if profs.merges > 3*2 {
		t.Errorf("%d merges, want at most 6", profs.merges)
	}
}

type countingProfiledSpans struct {
	ProfiledSpanReader
	finds, gets int
}

func (c *countingProfiledSpans) FindTraces(ctx context.Context, q storage.TraceQuery) ([]storage.TraceSummary, error) {
	c.finds++
	return c.ProfiledSpanReader.FindTraces(ctx, q)
}

func (c *countingProfiledSpans) GetTrace(ctx context.Context, id pcommon.TraceID) (ptrace.Traces, error) {
	c.gets++
	return c.ProfiledSpanReader.GetTrace(ctx, id)
}

type countingProfiles struct {
	storage.ProfileReader
	merges int
}

func (c *countingProfiles) MergeProfiles(ctx context.Context, q storage.ProfileQuery) (storage.MergedProfile, error) {
	c.merges++
	return c.ProfileReader.MergeProfiles(ctx, q)
}

func TestClosestTraced(t *testing.T) {
	traced := map[string]int64{"payments": 1, "orders": 1, "catalog": 1, "api": 1}
	for _, tt := range []struct{ prof, want string }{
		{"payments-svc", "payments"},
		{"Payments", "payments"},
		{"payments.cpu", "payments"},
		{"payments-api", "payments"},
		{"paymnets", "payments"},
		{"order", "orders"},
		{"ledger", ""},
		{"apis", ""}, // three letters are too few to guess from
		{"cat", ""},
	} {
		if got := closestTraced(tt.prof, traced, map[string]bool{tt.prof: true}); got != tt.want {
			t.Errorf("closestTraced(%q) = %q, want %q", tt.prof, got, tt.want)
		}
	}
}
