package profileapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/vigil-observability/vigil/internal/configcentre"
	"github.com/vigil-observability/vigil/internal/goldentest"
	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/memory"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// sample is one stack (root first, as people read them) with a value,
// in a span or not.
type sample struct {
	stack  []string
	value  int64
	spanID string
}

// cpuProfile builds a Go-like CPU profile (samples/count, cpu/nanoseconds).
func cpuProfile(t *testing.T, samples ...sample) []byte {
	t.Helper()
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		PeriodType: &profile.ValueType{Type: "cpu", Unit: "nanoseconds"}, Period: 10_000_000,
		TimeNanos: now.UnixNano(),
	}
	funcs := map[string]*profile.Function{}
	for _, s := range samples {
		ps := &profile.Sample{Value: []int64{s.value / 10_000_000, s.value}}
		for i := len(s.stack) - 1; i >= 0; i-- {
			name := s.stack[i]
			f := funcs[name]
			if f == nil {
				f = &profile.Function{ID: uint64(len(funcs) + 1), Name: name, Filename: "x.go"}
				funcs[name] = f
				p.Function = append(p.Function, f)
			}
			loc := &profile.Location{ID: uint64(len(p.Location) + 1), Line: []profile.Line{{Function: f, Line: 3}}}
			p.Location = append(p.Location, loc)
			ps.Location = append(ps.Location, loc)
		}
		if s.spanID != "" {
			ps.Label = map[string][]string{"span_id": {s.spanID}}
		}
		p.Sample = append(p.Sample, ps)
	}
	var b bytes.Buffer
	if err := p.Write(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func newTestHandler(t *testing.T, with ...func(*Options)) http.Handler {
	t.Helper()
	st := memory.NewProfileStore()
	write := func(svc string, at time.Time, labels map[string]string, data []byte) {
		if err := st.WriteProfiles(t.Context(), []storage.Profile{{
			Service: svc, Kind: storage.ProfileCPU, Start: at.Add(-10 * time.Second), End: at,
			Labels: labels, Data: data,
		}}); err != nil {
			t.Fatal(err)
		}
	}
	write("shop", now.Add(-time.Minute), map[string]string{"env": "prod"}, cpuProfile(t,
		sample{[]string{"main.main", "main.handle", "main.burn"}, 800_000_000, "00000000000000aa"},
		sample{[]string{"main.main", "main.idle"}, 100_000_000, ""},
	))
	write("shop", now.Add(-2*time.Minute), map[string]string{"env": "dev"}, cpuProfile(t,
		sample{[]string{"main.main", "main.idle"}, 300_000_000, ""},
		sample{[]string{"main.main", "runtime.tiny"}, 1, ""},
	))
	write("other", now.Add(-time.Minute), nil, cpuProfile(t, sample{[]string{"x.y"}, 5, ""}))
	opts := Options{Profiles: st, Now: func() time.Time { return now }}
	for _, f := range with {
		f(&opts)
	}
	return NewHandler(opts)
}

func get(t *testing.T, h http.Handler, path string, q url.Values) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path+"?"+q.Encode(), nil))
	return rec
}

func exportProfile(t *testing.T, h http.Handler, q url.Values) (*profile.Profile, map[string]int64) {
	t.Helper()
	rec := get(t, h, ExportPath, q)
	if rec.Code != http.StatusOK {
		t.Fatalf("export: %d %s", rec.Code, rec.Body)
	}
	p, err := profile.Parse(rec.Body)
	if err != nil {
		t.Fatalf("export is not a pprof: %v", err)
	}
	self := map[string]int64{}
	for _, s := range p.Sample {
		self[s.Location[0].Line[0].Function.Name] += s.Value[0]
	}
	return p, self
}

func TestExport(t *testing.T) {
	h := newTestHandler(t)
	p, self := exportProfile(t, h, url.Values{"service": {"shop"}, "type": {"cpu"}})
	if len(p.SampleType) != 1 || p.SampleType[0].Type != "cpu" || p.SampleType[0].Unit != "nanoseconds" {
		t.Errorf("sample types %v, want cpu/nanoseconds alone", p.SampleType)
	}
	if self["main.burn"] != 800_000_000 || self["main.idle"] != 400_000_000 || self["x.y"] != 0 {
		t.Errorf("merged self values %v", self)
	}
	if p.DurationNanos != int64(time.Hour) {
		t.Errorf("duration %v, want the default hour", time.Duration(p.DurationNanos))
	}

	_, self = exportProfile(t, h, url.Values{"service": {"shop"}, "label": {"env=dev"}})
	if self["main.burn"] != 0 || self["main.idle"] != 300_000_000 {
		t.Errorf("env=dev: %v", self)
	}
	sp, self := exportProfile(t, h, url.Values{"service": {"shop"}, "span_id": {"00000000000000aa"}})
	if len(self) != 1 || self["main.burn"] != 800_000_000 {
		t.Errorf("span 00000000000000aa: %v, want main.burn alone", self)
	}
	for _, s := range sp.Sample {
		if !s.HasLabel("span_id", "00000000000000aa") {
			t.Errorf("a sample of the span's export without its span_id label: %v", s.Label)
		}
	}
	_, self = exportProfile(t, h, url.Values{"service": {"shop"}, "start": {now.Add(-90 * time.Second).Format(time.RFC3339)}, "end": {now.Format(time.RFC3339)}})
	if self["main.idle"] != 100_000_000 {
		t.Errorf("last 90s: %v", self)
	}
}

func TestErrors(t *testing.T) {
	h := newTestHandler(t)
	for _, tc := range []struct {
		path string
		q    url.Values
		code int
		msg  string
	}{
		{ExportPath, url.Values{}, http.StatusBadRequest, "service is required"},
		{ExportPath, url.Values{"service": {"shop"}, "type": {"heap"}}, http.StatusBadRequest, "unknown profile type"},
		{ExportPath, url.Values{"service": {"shop"}, "start": {"x"}}, http.StatusBadRequest, "start"},
		{ExportPath, url.Values{"service": {"shop"}, "label": {"env"}}, http.StatusBadRequest, "name=value"},
		{ExportPath, url.Values{"service": {"nope"}}, http.StatusNotFound, "no cpu profiles"},
		{ExportPath, url.Values{"service": {"shop"}, "type": {"alloc_space"}}, http.StatusNotFound, "no alloc_space profiles"},
		{TopPath, url.Values{"service": {"shop"}, "limit": {"0"}}, http.StatusBadRequest, "limit"},
		{FlameGraphPath, url.Values{"service": {"shop"}, "min_fraction": {"2"}}, http.StatusBadRequest, "min_fraction"},
		{DiffPath, url.Values{}, http.StatusBadRequest, "service is required"},
		{DiffPath, url.Values{"service": {"shop"}, "baseline_start": {"x"}}, http.StatusBadRequest, "baseline_start"},
		{DiffPath, url.Values{"service": {"shop"}, "baseline_end": {"x"}}, http.StatusBadRequest, "baseline_end"},
		{DiffPath, url.Values{"service": {"shop"}, "baseline_start": {"2026-03-01T11:00:00Z"}, "baseline_end": {"2026-03-01T10:00:00Z"}}, http.StatusBadRequest, "baseline_end is before baseline_start"},
		{DiffPath, url.Values{"service": {"shop"}, "limit": {"-1"}}, http.StatusBadRequest, "limit"},
		{DiffPath, url.Values{"service": {"shop"}, "min_fraction": {"x"}}, http.StatusBadRequest, "min_fraction"},
		{DiffPath, url.Values{"service": {"shop"}, "version": {"v2"}}, http.StatusBadRequest, "need change tracking"},
	} {
		rec := get(t, h, tc.path, tc.q)
		if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.msg) {
			t.Errorf("%s?%s: %d %s, want %d with %q", tc.path, tc.q.Encode(), rec.Code, rec.Body, tc.code, tc.msg)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, ExportPath, nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", rec.Code)
	}
}

func decode[T any](t *testing.T, body io.Reader) T {
	t.Helper()
	var env struct {
		Status string `json:"status"`
		Data   T      `json:"data"`
	}
	if err := json.NewDecoder(body).Decode(&env); err != nil {
		t.Fatal(err)
	}
	if env.Status != "success" {
		t.Fatalf("status %q", env.Status)
	}
	return env.Data
}

func TestTop(t *testing.T) {
	h := newTestHandler(t)
	rec := get(t, h, TopPath, url.Values{"service": {"shop"}, "limit": {"2"}})
	if rec.Code != http.StatusOK {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	got := decode[struct {
		Type      string     `json:"type"`
		Unit      string     `json:"unit"`
		Profiles  int        `json:"profiles"`
		Total     int64      `json:"total"`
		Functions []Function `json:"functions"`
	}](t, rec.Body)
	if got.Type != "cpu" || got.Unit != "nanoseconds" || got.Profiles != 2 || got.Total != 1_200_000_001 {
		t.Errorf("got %+v", got)
	}
	if len(got.Functions) != 2 || got.Functions[0].Name != "main.burn" || got.Functions[0].Self != 800_000_000 ||
		got.Functions[1].Name != "main.idle" {
		t.Errorf("functions %+v", got.Functions)
	}
	// No profiles: an empty answer, not an error.
	rec = get(t, h, TopPath, url.Values{"service": {"nope"}})
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"functions":[]`) {
		t.Errorf("no profiles: %d %s", rec.Code, rec.Body)
	}
}

func TestFlameGraph(t *testing.T) {
	h := newTestHandler(t)
	rec := get(t, h, FlameGraphPath, url.Values{"service": {"shop"}})
	if rec.Code != http.StatusOK {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	got := decode[struct {
		Total      int64 `json:"total"`
		FlameGraph *Node `json:"flamegraph"`
	}](t, rec.Body)
	root := got.FlameGraph
	if root.Name != "total" || root.Total != 1_200_000_001 || len(root.Children) != 1 {
		t.Fatalf("root %+v", root)
	}
	m := root.Children[0]
	if m.Name != "main.main" || m.Total != root.Total {
		t.Fatalf("main.main: %+v", m)
	}
	// runtime.tiny is far below a thousandth: folded into (other).
	var names []string
	for _, c := range m.Children {
		names = append(names, c.Name)
	}
	if strings.Join(names, ",") != "main.handle,main.idle,(other)" {
		t.Errorf("children of main.main: %v", names)
	}
	if b := m.Children[0].Children; len(b) != 1 || b[0].Name != "main.burn" || b[0].Self != 800_000_000 {
		t.Errorf("main.handle's children: %+v", b)
	}
}

func TestServices(t *testing.T) {
	h := newTestHandler(t)
	rec := get(t, h, ServicesPath, url.Values{})
	got := decode[[]storage.ProfileService](t, rec.Body)
	if len(got) != 2 || got[0].Service != "other" || got[1].Service != "shop" || got[1].Kinds[0] != "cpu" {
		t.Errorf("services %+v", got)
	}
}

// TestDiff pins the diff's answers in testdata/diff_*.json. The test data
// has the idle frame alone two minutes ago (env=dev) and the burner
// dominating a minute ago (env=prod).
func TestDiff(t *testing.T) {
	h := newTestHandler(t)
	at := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	for _, tc := range []struct {
		name string
		q    url.Values
	}{
		// The last 90 s against the 90 s before: main.burn grew from
		// nothing, main.idle shrank from (nearly) everything.
		{"previous_range", url.Values{"service": {"shop"}, "start": {at(-90 * time.Second)}, "end": {at(0)}}},
		// A baseline given by its start alone is as long as the
		// comparison; min_fraction 0 keeps runtime.tiny.
		{"baseline_start", url.Values{"service": {"shop"}, "start": {at(-90 * time.Second)}, "end": {at(0)},
			"baseline_start": {at(-3 * time.Minute)}, "min_fraction": {"0"}, "limit": {"2"}}},
		// Ranges of different lengths compare by share: the baseline's
		// hour holds both profiles.
		{"longer_baseline", url.Values{"service": {"shop"}, "start": {at(-90 * time.Second)}, "end": {at(0)},
			"baseline_start": {at(-time.Hour)}, "baseline_end": {at(0)}}},
		// Nothing in the baseline: every share is new.
		{"empty_baseline", url.Values{"service": {"shop"}, "label": {"env=prod"}, "start": {at(-90 * time.Second)}, "end": {at(0)}}},
		// Nothing at all: an empty tree and no changes, not an error.
		{"nothing", url.Values{"service": {"nope"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := get(t, h, DiffPath, tc.q)
			if rec.Code != http.StatusOK {
				t.Fatalf("%d %s", rec.Code, rec.Body)
			}
			goldentest.CompareJSON(t, "diff_"+tc.name+".json", rec.Body.Bytes())
		})
	}
}

// TestDiffVersions maps versions to ranges through the deploys: shop went
// from v1 to v2 100 s ago (other's deploy at the same time is no
// business of shop's).
func TestDiffVersions(t *testing.T) {
	var asked [2]time.Time
	h := newTestHandler(t, func(o *Options) {
		o.Deploys = func(_ context.Context, start, end time.Time) ([]configcentre.Change, error) {
			asked = [2]time.Time{start, end}
			return []configcentre.Change{
				{Time: now.Add(-100 * time.Second), Kind: configcentre.KindDeploy, Action: "deploy", Service: "shop", Instance: "a", From: "v1", To: "v2"},
				{Time: now.Add(-150 * time.Second), Kind: configcentre.KindDeploy, Action: "deploy", Service: "other", From: "v2", To: "v3"},
				{Time: now.Add(-time.Hour), Kind: configcentre.KindConfig, Action: "put", Item: "v2"},
			}, nil
		}
	})
	for _, tc := range []struct {
		name string
		q    url.Values
	}{
		// v2 ran from the deploy until now, v1 from the window's start
		// until the deploy.
		{"versions", url.Values{"service": {"shop"}, "version": {"v2"}, "baseline_version": {"v1"}}},
		// v2 against the equal range before it.
		{"version", url.Values{"service": {"shop"}, "version": {"v2"}, "min_fraction": {"0"}}},
		// The last 90 s against v1's range, found in the week before.
		{"baseline_version", url.Values{"service": {"shop"}, "baseline_version": {"v1"}, "start": {now.Add(-90 * time.Second).Format(time.RFC3339)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := get(t, h, DiffPath, tc.q)
			if rec.Code != http.StatusOK {
				t.Fatalf("%d %s", rec.Code, rec.Body)
			}
			goldentest.CompareJSON(t, "diff_"+tc.name+".json", rec.Body.Bytes())
		})
	}
	if want := now.Add(-DefaultVersionWindow); !asked[0].Equal(want) || !asked[1].Equal(now) {
		t.Errorf("deploys asked for %v, want the week before now", asked)
	}
	for _, tc := range []struct {
		q   url.Values
		msg string
	}{
		{url.Values{"service": {"shop"}, "version": {"v9"}}, `version: no deploy of service \"shop\" to or from version \"v9\"`},
		{url.Values{"service": {"shop"}, "version": {"v2"}, "baseline_version": {"v3"}}, `baseline_version: no deploy`},
		{url.Values{"service": {"other"}, "version": {"v1"}}, `no deploy of service \"other\"`},
	} {
		rec := get(t, h, DiffPath, tc.q)
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), tc.msg) {
			t.Errorf("%s: %d %s, want 400 with %s", tc.q.Encode(), rec.Code, rec.Body, tc.msg)
		}
	}
}
