package pyroscope

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/vigil-observability/vigil/internal/ingest"
	"github.com/vigil-observability/vigil/internal/selfobs"
	"github.com/vigil-observability/vigil/internal/storage"
)

type memWriter struct {
	mu  sync.Mutex
	got []storage.Profile
	err error
}

func (m *memWriter) WriteProfiles(_ context.Context, ps []storage.Profile) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	m.got = append(m.got, ps...)
	return nil
}

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// goProfile builds a small profile with the given sample types, one
// sample per stack of function names (leaf first), each sample labelled
// with a span id when spanID is not empty.
func goProfile(types []string, spanID string, stacks ...[]string) *profile.Profile {
	p := &profile.Profile{TimeNanos: now.Add(-10 * time.Second).UnixNano(), DurationNanos: int64(10 * time.Second)}
	for _, t := range types {
		unit := "count"
		switch t {
		case "cpu", "delay":
			unit = "nanoseconds"
		case "alloc_space", "inuse_space":
			unit = "bytes"
		}
		p.SampleType = append(p.SampleType, &profile.ValueType{Type: t, Unit: unit})
	}
	p.PeriodType = p.SampleType[len(p.SampleType)-1]
	p.Period = 1
	funcs := map[string]*profile.Function{}
	for _, stack := range stacks {
		s := &profile.Sample{}
		for _, name := range stack {
			f := funcs[name]
			if f == nil {
				f = &profile.Function{ID: uint64(len(funcs) + 1), Name: name, SystemName: name, Filename: "main.go"}
				funcs[name] = f
				p.Function = append(p.Function, f)
			}
			loc := &profile.Location{ID: uint64(len(p.Location) + 1), Line: []profile.Line{{Function: f, Line: 1}}}
			p.Location = append(p.Location, loc)
			s.Location = append(s.Location, loc)
		}
		for range types {
			s.Value = append(s.Value, 10)
		}
		if spanID != "" {
			s.Label = map[string][]string{"span_id": {spanID}}
		}
		p.Sample = append(p.Sample, s)
	}
	return p
}

func pprofBytes(t *testing.T, p *profile.Profile) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := p.Write(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// multipartBody is what pyroscope-go sends: a profile part and a
// sample_type_config part.
func multipartBody(t *testing.T, prof, prev []byte, config map[string]any) (*bytes.Buffer, string) {
	t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	fw, _ := w.CreateFormFile("profile", "profile.pprof")
	_, _ = fw.Write(prof)
	if prev != nil {
		fw, _ = w.CreateFormFile("prev_profile", "profile.pprof")
		_, _ = fw.Write(prev)
	}
	if config != nil {
		fw, _ = w.CreateFormFile("sample_type_config", "sample_type_config.json")
		_ = json.NewEncoder(fw).Encode(config)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return &body, w.FormDataContentType()
}

type fixture struct {
	h       *Handler
	w       *memWriter
	metrics *selfobs.IngestMetrics
}

func newFixture(t *testing.T, mod func(*Options)) *fixture {
	f := &fixture{w: &memWriter{}, metrics: selfobs.NewIngestMetrics(prometheus.NewRegistry())}
	opts := Options{Profiles: f.w, Ingest: f.metrics, Now: func() time.Time { return now }}
	if mod != nil {
		mod(&opts)
	}
	f.h = NewHandler(opts)
	return f
}

func (f *fixture) post(query url.Values, body *bytes.Buffer, contentType string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, Path+"?"+query.Encode(), body)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec
}

func (f *fixture) rejected(reason string) float64 {
	return testutil.ToFloat64(f.metrics.Rejected.WithLabelValues("profiles", reason))
}

func pyroscopeQuery(name string) url.Values {
	return url.Values{
		"name": {name}, "spyName": {"gospy"}, "sampleRate": {"100"},
		"from":  {fmt.Sprint(now.Add(-10 * time.Second).UnixNano())},
		"until": {fmt.Sprint(now.UnixNano())},
	}
}

func TestPyroscopeUpload(t *testing.T) {
	f := newFixture(t, nil)
	prof := goProfile([]string{"samples", "cpu"}, "00000000000000aa", []string{"main.burn", "main.main"})
	body, ct := multipartBody(t, pprofBytes(t, prof), nil, nil)
	rec := f.post(pyroscopeQuery(`shop{env="prod",__session_id__=abc,region=eu}`), body, ct)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if len(f.w.got) != 1 {
		t.Fatalf("stored %d profiles, want 1", len(f.w.got))
	}
	if n := testutil.ToFloat64(f.metrics.Stored.WithLabelValues("profiles")); n != 1 {
		t.Errorf(`vigil_stored_total{signal="profiles"} = %v, want 1`, n)
	}
	got := f.w.got[0]
	if got.Service != "shop" || got.Kind != storage.ProfileCPU {
		t.Errorf("service %q kind %q, want shop cpu", got.Service, got.Kind)
	}
	if !got.Start.Equal(now.Add(-10*time.Second)) || !got.End.Equal(now) {
		t.Errorf("range %v..%v", got.Start, got.End)
	}
	if len(got.Labels) != 2 || got.Labels["env"] != "prod" || got.Labels["region"] != "eu" {
		t.Errorf("labels %v, want env=prod region=eu (reserved labels dropped)", got.Labels)
	}
	back, err := profile.ParseData(got.Data)
	if err != nil {
		t.Fatalf("stored data is not a pprof: %v", err)
	}
	if len(back.Sample) != 1 || back.Sample[0].Location[0].Line[0].Function.Name != "main.burn" ||
		!slices.Equal(back.Sample[0].Label["span_id"], []string{"00000000000000aa"}) {
		t.Errorf("stored profile:\n%v", back)
	}
}

func TestKinds(t *testing.T) {
	for _, tc := range []struct {
		name   string
		types  []string
		config map[string]any
		want   string
	}{
		{"app.cpu", []string{"samples", "cpu"}, nil, storage.ProfileCPU},
		{"app", []string{"samples", "cpu"}, nil, storage.ProfileCPU},
		{"app", []string{"alloc_objects", "alloc_space", "inuse_objects", "inuse_space"}, nil, storage.ProfileMemory},
		{"app.alloc_space", []string{"alloc_objects", "alloc_space", "inuse_objects", "inuse_space"}, nil, storage.ProfileMemory},
		{"app", []string{"goroutine"}, map[string]any{"goroutine": map[string]string{"display-name": "goroutine"}}, storage.ProfileGoroutine},
		{"app", []string{"contentions", "delay"}, map[string]any{"delay": map[string]string{"display-name": "mutex_duration"}}, storage.ProfileMutex},
		{"app", []string{"contentions", "delay"}, map[string]any{"delay": map[string]string{"display-name": "block_duration"}}, storage.ProfileBlock},
		{"app.mutex", []string{"contentions", "delay"}, nil, storage.ProfileMutex},
	} {
		t.Run(tc.name+"/"+tc.want, func(t *testing.T) {
			f := newFixture(t, nil)
			body, ct := multipartBody(t, pprofBytes(t, goProfile(tc.types, "", []string{"main.f"})), nil, tc.config)
			rec := f.post(pyroscopeQuery(tc.name+"{}"), body, ct)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			if got := f.w.got[0]; got.Kind != tc.want || got.Service != "app" {
				t.Errorf("stored as %s/%s, want app/%s", got.Service, got.Kind, tc.want)
			}
		})
	}
}

// A plain pprof body, seconds for from/until, and service_name.
func TestPlainUpload(t *testing.T) {
	f := newFixture(t, nil)
	prof := goProfile([]string{"alloc_objects", "alloc_space", "inuse_objects", "inuse_space"}, "", []string{"main.alloc"})
	q := url.Values{
		"name": {"ignored{service_name=payments}"},
		"from": {fmt.Sprint(now.Unix() - 60)}, "until": {fmt.Sprint(now.Unix() - 50)},
		"format": {"pprof"},
	}
	rec := f.post(q, bytes.NewBuffer(pprofBytes(t, prof)), "application/octet-stream")
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	got := f.w.got[0]
	if got.Service != "payments" || len(got.Labels) != 0 || !got.Start.Equal(now.Add(-time.Minute)) || !got.End.Equal(now.Add(-50*time.Second)) {
		t.Errorf("got %s %v %v..%v", got.Service, got.Labels, got.Start, got.End)
	}
}

// A cumulative profile and its predecessor are stored as their difference.
func TestPrevProfile(t *testing.T) {
	f := newFixture(t, nil)
	cur := goProfile([]string{"samples", "cpu"}, "", []string{"main.a"}, []string{"main.b"})
	cur.Sample[0].Value = []int64{30, 30}
	prev := goProfile([]string{"samples", "cpu"}, "", []string{"main.a"}, []string{"main.b"})
	prev.Sample[1].Value = []int64{10, 10}
	body, ct := multipartBody(t, pprofBytes(t, cur), pprofBytes(t, prev), nil)
	if rec := f.post(pyroscopeQuery("app.cpu{}"), body, ct); rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	back, err := profile.ParseData(f.w.got[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	vals := map[string]int64{}
	for _, s := range back.Sample {
		vals[s.Location[0].Line[0].Function.Name] += s.Value[1]
	}
	if vals["main.a"] != 20 || vals["main.b"] != 0 {
		t.Errorf("delta %v, want main.a 20 and main.b gone", vals)
	}
}

// manyLocations is a pprof with n locations and nothing else worth
// parsing: a few bytes each.
func manyLocations(n int) []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.BytesType) // sample_type
	b = protowire.AppendBytes(b, nil)
	for i := 1; i <= n; i++ {
		var loc []byte
		loc = protowire.AppendTag(loc, 1, protowire.VarintType)
		loc = protowire.AppendVarint(loc, uint64(i))
		b = protowire.AppendTag(b, fieldLocation, protowire.BytesType)
		b = protowire.AppendBytes(b, loc)
	}
	return b
}

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&out, gzip.BestSpeed)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return out.Bytes()
}

func TestBadInput(t *testing.T) {
	cpu := goProfile([]string{"samples", "cpu"}, "", []string{"main.f"})
	good := pprofBytes(t, cpu)
	// 64 MiB of zeros, twice the limit, compresses to 64 KiB; the limit
	// stops inflating half way.
	bomb := func() []byte {
		var out bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&out, gzip.BestSpeed)
		zeros := make([]byte, 1<<20)
		for range 64 {
			_, _ = zw.Write(zeros)
		}
		_ = zw.Close()
		return out.Bytes()
	}()
	for _, tc := range []struct {
		name    string
		appName string
		prof    []byte
		code    int
		reason  string
		msg     string
	}{
		{"truncated", "app.cpu{}", good[:len(good)/2], http.StatusBadRequest, "undecodable", "malformed profile"},
		{"garbage", "app.cpu{}", []byte("not a profile at all"), http.StatusBadRequest, "undecodable", "malformed profile"},
		{"empty", "app.cpu{}", []byte{}, http.StatusBadRequest, "undecodable", "malformed profile"},
		{"gzip bomb", "app.cpu{}", bomb, http.StatusRequestEntityTooLarge, "profile_too_large", "once decompressed"},
		{"a million locations", "app.cpu{}", gzipped(t, manyLocations(1_000_000)), http.StatusRequestEntityTooLarge, "profile_too_large", "1000000 locations"},
		{"wrong sample types", "app.cpu{}", pprofBytes(t, goProfile([]string{"inuse_space"}, "", []string{"main.f"})), http.StatusBadRequest, "wrong_sample_types", "not those of a cpu profile"},
		{"unknown sample types", "app{}", pprofBytes(t, goProfile([]string{"widgets"}, "", []string{"main.f"})), http.StatusBadRequest, "wrong_sample_types", "not those of a Go"},
		{"contention without its kind", "app{}", pprofBytes(t, goProfile([]string{"contentions", "delay"}, "", []string{"main.f"})), http.StatusBadRequest, "wrong_sample_types", "mutexes or blocking"},
		{"no name", "", good, http.StatusBadRequest, "invalid_label", "name is required"},
		{"bad name", "app{env", good, http.StatusBadRequest, "invalid_label", "not closed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			body, ct := multipartBody(t, tc.prof, nil, nil)
			rec := f.post(pyroscopeQuery(tc.appName), body, ct)
			if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.msg) {
				t.Errorf("got %d %q, want %d with %q", rec.Code, rec.Body, tc.code, tc.msg)
			}
			if got := f.rejected(tc.reason); got != 1 {
				t.Errorf("vigil_rejected_total{reason=%q} = %v, want 1", tc.reason, got)
			}
			if len(f.w.got) != 0 {
				t.Errorf("stored %d profiles", len(f.w.got))
			}
		})
	}
}

func TestTimes(t *testing.T) {
	prof := func() []byte { return pprofBytes(t, goProfile([]string{"samples", "cpu"}, "", []string{"main.f"})) }
	for _, tc := range []struct {
		name        string
		from, until string
		code        int
		reason      string
	}{
		{"seconds", fmt.Sprint(now.Unix() - 10), fmt.Sprint(now.Unix()), http.StatusOK, ""},
		{"milliseconds", fmt.Sprint(now.UnixMilli() - 10), fmt.Sprint(now.UnixMilli()), http.StatusOK, ""},
		{"too old", fmt.Sprint(now.Add(-30 * 24 * time.Hour).Unix()), fmt.Sprint(now.Add(-30*24*time.Hour).Unix() + 10), http.StatusBadRequest, "timestamp_too_old"},
		{"future", fmt.Sprint(now.Add(48 * time.Hour).Unix()), fmt.Sprint(now.Add(48*time.Hour).Unix() + 10), http.StatusBadRequest, "timestamp_in_future"},
		{"until before from", fmt.Sprint(now.Unix()), fmt.Sprint(now.Unix() - 10), http.StatusBadRequest, "undecodable"},
		{"not a number", "yesterday", fmt.Sprint(now.Unix()), http.StatusBadRequest, "undecodable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			body, ct := multipartBody(t, prof(), nil, nil)
			rec := f.post(url.Values{"name": {"app.cpu"}, "from": {tc.from}, "until": {tc.until}}, body, ct)
			if rec.Code != tc.code {
				t.Fatalf("status %d (%s), want %d", rec.Code, rec.Body, tc.code)
			}
			if tc.reason != "" && f.rejected(tc.reason) != 1 {
				t.Errorf("not counted as %s", tc.reason)
			}
		})
	}
}

func TestOverload(t *testing.T) {
	prof := pprofBytes(t, goProfile([]string{"samples", "cpu"}, "", []string{"main.f"}))
	t.Run("too many in flight", func(t *testing.T) {
		adm := ingest.NewAdmission(ingest.AdmissionOptions{MaxInFlight: 1})
		rel, _ := adm.Admit()
		defer rel()
		f := newFixture(t, func(o *Options) { o.Admission = adm })
		body, ct := multipartBody(t, prof, nil, nil)
		rec := f.post(pyroscopeQuery("app.cpu"), body, ct)
		if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
			t.Errorf("got %d, Retry-After %q; want 429 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
		}
		if f.rejected("overloaded") != 1 {
			t.Error("not counted as overloaded")
		}
	})
	t.Run("write queue full", func(t *testing.T) {
		f := newFixture(t, nil)
		f.w.err = fmt.Errorf("queue: %w", ingest.ErrOverloaded)
		body, ct := multipartBody(t, prof, nil, nil)
		if rec := f.post(pyroscopeQuery("app.cpu"), body, ct); rec.Code != http.StatusTooManyRequests {
			t.Errorf("got %d, want 429", rec.Code)
		}
	})
	t.Run("storage failure", func(t *testing.T) {
		f := newFixture(t, nil)
		f.w.err = errors.New("disk on fire")
		body, ct := multipartBody(t, prof, nil, nil)
		rec := f.post(pyroscopeQuery("app.cpu"), body, ct)
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
			t.Errorf("got %d, want 503 with Retry-After", rec.Code)
		}
	})
	t.Run("store refuses the profile", func(t *testing.T) {
		f := newFixture(t, nil)
		f.w.err = fmt.Errorf("decompose: %w", storage.ErrInvalidProfile)
		body, ct := multipartBody(t, prof, nil, nil)
		if rec := f.post(pyroscopeQuery("app.cpu"), body, ct); rec.Code != http.StatusBadRequest || f.rejected("undecodable") != 1 {
			t.Errorf("got %d, counted %v; want 400 counted as undecodable", rec.Code, f.rejected("undecodable"))
		}
	})
	t.Run("body too large", func(t *testing.T) {
		f := newFixture(t, func(o *Options) { o.Limits.MaxRequestBytes = 1024 })
		big := pprofBytes(t, goProfile([]string{"samples", "cpu"}, "", func() (s [][]string) {
			for i := range 200 {
				s = append(s, []string{fmt.Sprintf("main.f%d", i)})
			}
			return s
		}()...))
		body, ct := multipartBody(t, big, nil, nil)
		if rec := f.post(pyroscopeQuery("app.cpu"), body, ct); rec.Code != http.StatusRequestEntityTooLarge {
			t.Errorf("got %d, want 413", rec.Code)
		}
		if f.rejected("request_too_large") != 1 {
			t.Error("not counted as request_too_large")
		}
	})
}

// Services sharing one process share its profiler: the SDK labels each
// request's samples service_name=<service>, and one upload becomes a
// profile per service, the unlabelled samples staying under the app.
func TestSplitByServiceLabel(t *testing.T) {
	f := newFixture(t, nil)
	prof := goProfile([]string{"samples", "cpu"}, "00000000000000aa",
		[]string{"shop.fraudScore", "shop.charge"}, []string{"shop.listProducts"}, []string{"runtime.gcBgMarkWorker"})
	prof.Sample[0].Label["service_name"] = []string{"payments"}
	prof.Sample[1].Label["service_name"] = []string{"catalog"}
	prof.Sample[2].Label = nil
	body, ct := multipartBody(t, pprofBytes(t, prof), nil, nil)
	if rec := f.post(pyroscopeQuery(`gateway{env="demo"}`), body, ct); rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	want := map[string]string{"payments": "shop.fraudScore", "catalog": "shop.listProducts", "gateway": "runtime.gcBgMarkWorker"}
	if len(f.w.got) != len(want) {
		t.Fatalf("stored %d profiles, want %d", len(f.w.got), len(want))
	}
	for _, got := range f.w.got {
		back, err := profile.ParseData(got.Data)
		if err != nil {
			t.Fatalf("%s: stored data is not a pprof: %v", got.Service, err)
		}
		if len(back.Sample) != 1 || back.Sample[0].Location[0].Line[0].Function.Name != want[got.Service] {
			t.Errorf("%s: stored profile:\n%v", got.Service, back)
			continue
		}
		if got.Kind != storage.ProfileCPU || got.Labels["env"] != "demo" {
			t.Errorf("%s: kind %q labels %v", got.Service, got.Kind, got.Labels)
		}
		if _, ok := back.Sample[0].Label["service_name"]; ok {
			t.Errorf("%s: the service_name label is kept on the samples", got.Service)
		}
		if got.Service != "gateway" && !slices.Equal(back.Sample[0].Label["span_id"], []string{"00000000000000aa"}) {
			t.Errorf("%s: span_id label lost: %v", got.Service, back.Sample[0].Label)
		}
		if len(back.Function) > 2 {
			t.Errorf("%s: %d functions, want only the part's own", got.Service, len(back.Function))
		}
	}
}
