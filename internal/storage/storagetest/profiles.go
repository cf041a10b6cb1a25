package storagetest

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/vigil-observability/vigil/internal/storage"
)

// ProfileSample is one sample of a fixture profile: its stack, innermost
// first, its values (one per sample type) and its span id.
type ProfileSample struct {
	Stack  []string
	Values []int64
	SpanID string
}

// PprofBytes builds a gzipped pprof with the given sample types (units are
// Go's) and samples.
func PprofBytes(t testing.TB, sampleTypes []string, samples ...ProfileSample) []byte {
	t.Helper()
	p := &profile.Profile{Period: 1}
	for _, st := range sampleTypes {
		unit := "count"
		switch st {
		case "cpu", "delay":
			unit = "nanoseconds"
		case "alloc_space", "inuse_space":
			unit = "bytes"
		}
		p.SampleType = append(p.SampleType, &profile.ValueType{Type: st, Unit: unit})
	}
	p.PeriodType = p.SampleType[len(p.SampleType)-1]
	fns := map[string]*profile.Function{}
	locs := map[string]*profile.Location{}
	for _, s := range samples {
		ps := &profile.Sample{Value: s.Values}
		for _, name := range s.Stack {
			loc := locs[name]
			if loc == nil {
				fn := &profile.Function{ID: uint64(len(fns) + 1), Name: name, SystemName: name, Filename: "src/" + name + ".go"}
				fns[name] = fn
				p.Function = append(p.Function, fn)
				loc = &profile.Location{ID: uint64(len(locs) + 1), Line: []profile.Line{{Function: fn, Line: int64(len(locs) + 7)}}}
				locs[name] = loc
				p.Location = append(p.Location, loc)
			}
			ps.Location = append(ps.Location, loc)
		}
		if s.SpanID != "" {
			ps.Label = map[string][]string{"span_id": {s.SpanID}}
		}
		p.Sample = append(p.Sample, ps)
	}
	var b bytes.Buffer
	if err := p.Write(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// RunProfileStore is the conformance suite of profile backends: open
// returns a new, empty store, closed by the caller's cleanup.
func RunProfileStore(t *testing.T, open func(t *testing.T) storage.ProfileStore) {
	ctx := context.Background()
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(sec int) time.Time { return base.Add(time.Duration(sec) * time.Second) }
	cpu := []string{"samples", "cpu"}
	mem := []string{"alloc_objects", "alloc_space", "inuse_objects", "inuse_space"}
	prof := func(svc, kind string, startSec int, labels map[string]string, data []byte) storage.Profile {
		return storage.Profile{Service: svc, Kind: kind, Start: at(startSec), End: at(startSec + 10), Labels: labels, Data: data}
	}
	fixture := func(t *testing.T) []storage.Profile {
		return []storage.Profile{
			prof("checkout", storage.ProfileCPU, 0, map[string]string{"env": "prod", "region": "eu"}, PprofBytes(t, cpu,
				ProfileSample{Stack: []string{"burn", "handle", "main"}, Values: []int64{8, 800}, SpanID: "00000000000000a1"},
				ProfileSample{Stack: []string{"idle", "main"}, Values: []int64{1, 100}},
				ProfileSample{Stack: []string{"burn", "handle", "main"}, Values: []int64{2, 200}, SpanID: "00000000000000a2"},
			)),
			prof("checkout", storage.ProfileCPU, 10, map[string]string{"env": "prod", "region": "us"}, PprofBytes(t, cpu,
				ProfileSample{Stack: []string{"idle", "main"}, Values: []int64{3, 300}},
			)),
			prof("checkout", storage.ProfileCPU, 20, map[string]string{"env": "dev"}, PprofBytes(t, cpu,
				ProfileSample{Stack: []string{"burn", "handle", "main"}, Values: []int64{5, 50}},
			)),
			prof("checkout", storage.ProfileMemory, 0, map[string]string{"env": "prod"}, PprofBytes(t, mem,
				ProfileSample{Stack: []string{"alloc", "main"}, Values: []int64{4, 4096, 0, 0}},
				ProfileSample{Stack: []string{"cache", "main"}, Values: []int64{1, 1024, 1, 1024}},
			)),
			prof("payments", storage.ProfileCPU, 0, nil, PprofBytes(t, cpu,
				ProfileSample{Stack: []string{"charge", "main"}, Values: []int64{1, 10}, SpanID: "00000000000000b1"},
			)),
			// A label value with the store's separators stays one label.
			prof("odd", storage.ProfileGoroutine, 0, map[string]string{"k": "a=b|c\x1fd"}, PprofBytes(t, []string{"goroutine"},
				ProfileSample{Stack: []string{"gopark", "wait"}, Values: []int64{7}},
			)),
		}
	}
	written := func(t *testing.T) storage.ProfileStore {
		s := open(t)
		if err := s.WriteProfiles(ctx, fixture(t)); err != nil {
			t.Fatalf("WriteProfiles: %v", err)
		}
		return s
	}
	// leaves sums a merged profile by innermost function.
	leaves := func(m storage.MergedProfile) map[string]int64 {
		out := map[string]int64{}
		for _, st := range m.Stacks {
			out[st.Frames[0].Function] += st.Value
		}
		return out
	}

	t.Run("Stacks", func(t *testing.T) {
		s := written(t)
		m, err := s.MergeProfiles(ctx, storage.ProfileQuery{Service: "checkout", Kind: storage.ProfileCPU, SampleTypes: []string{"cpu"}, Start: at(0), End: at(5)})
		if err != nil {
			t.Fatal(err)
		}
		if m.Profiles != 1 || len(m.Stacks) != 2 {
			t.Fatalf("got %d profiles, %d stacks; want 1 profile, 2 stacks (one per distinct stack)", m.Profiles, len(m.Stacks))
		}
		slices.SortFunc(m.Stacks, func(a, b storage.ProfileStack) int { return int(b.Value - a.Value) })
		want := []storage.ProfileFrame{{Function: "burn", File: "src/burn.go"}, {Function: "handle", File: "src/handle.go"}, {Function: "main", File: "src/main.go"}}
		got := m.Stacks[0]
		if got.Value != 1000 || len(got.Frames) != 3 {
			t.Fatalf("top stack %+v, want burn<handle<main with 1000", got)
		}
		for i, f := range got.Frames {
			if f.Function != want[i].Function || f.File != want[i].File || f.Line == 0 {
				t.Errorf("frame %d: %+v, want %+v with its line", i, f, want[i])
			}
		}
	})

	t.Run("Select", func(t *testing.T) {
		s := written(t)
		q := func(mod func(*storage.ProfileQuery)) storage.ProfileQuery {
			q := storage.ProfileQuery{Service: "checkout", Kind: storage.ProfileCPU, SampleTypes: []string{"cpu"}, Start: at(0), End: at(100)}
			mod(&q)
			return q
		}
		for _, tc := range []struct {
			name     string
			q        storage.ProfileQuery
			want     map[string]int64
			profiles int
		}{
			{"all", q(func(*storage.ProfileQuery) {}), map[string]int64{"burn": 1050, "idle": 400}, 3},
			{"another sample type", q(func(q *storage.ProfileQuery) { q.SampleTypes = []string{"samples"} }), map[string]int64{"burn": 15, "idle": 4}, 3},
			{"sample type absent", q(func(q *storage.ProfileQuery) { q.SampleTypes = []string{"inuse_space"} }), map[string]int64{}, 0},
			{"memory", q(func(q *storage.ProfileQuery) {
				q.Kind, q.SampleTypes = storage.ProfileMemory, []string{"inuse_space"}
			}), map[string]int64{"cache": 1024}, 1},
			{"overlap at the edges", q(func(q *storage.ProfileQuery) { q.Start, q.End = at(10), at(20) }), map[string]int64{"burn": 1050, "idle": 400}, 3},
			{"inside one", q(func(q *storage.ProfileQuery) { q.Start, q.End = at(12), at(13) }), map[string]int64{"idle": 300}, 1},
			{"before all", q(func(q *storage.ProfileQuery) { q.Start, q.End = at(-100), at(-1) }), map[string]int64{}, 0},
			{"label", q(func(q *storage.ProfileQuery) { q.Labels = map[string]string{"env": "prod"} }), map[string]int64{"burn": 1000, "idle": 400}, 2},
			{"labels", q(func(q *storage.ProfileQuery) { q.Labels = map[string]string{"env": "prod", "region": "us"} }), map[string]int64{"idle": 300}, 1},
			{"label value is whole", q(func(q *storage.ProfileQuery) { q.Labels = map[string]string{"env": "pro"} }), map[string]int64{}, 0},
			{"odd label value", q(func(q *storage.ProfileQuery) {
				q.Service, q.Kind, q.SampleTypes = "odd", storage.ProfileGoroutine, []string{"goroutine", "goroutines"}
				q.Labels = map[string]string{"k": "a=b|c\x1fd"}
			}), map[string]int64{"gopark": 7}, 1},
			{"span", q(func(q *storage.ProfileQuery) { q.SpanID = "00000000000000a2" }), map[string]int64{"burn": 200}, 1},
			{"span of another service", q(func(q *storage.ProfileQuery) { q.SpanID = "00000000000000b1" }), map[string]int64{}, 0},
			{"span id is whole", q(func(q *storage.ProfileQuery) { q.SpanID = "00000000000000a" }), map[string]int64{}, 0},
			{"unknown service", q(func(q *storage.ProfileQuery) { q.Service = "nope" }), map[string]int64{}, 0},
		} {
			t.Run(tc.name, func(t *testing.T) {
				m, err := s.MergeProfiles(ctx, tc.q)
				if err != nil {
					t.Fatal(err)
				}
				if got := leaves(m); !maps.Equal(got, tc.want) || m.Profiles != tc.profiles {
					t.Errorf("got %v from %d profiles, want %v from %d", got, m.Profiles, tc.want, tc.profiles)
				}
			})
		}
	})

	t.Run("InvalidQuery", func(t *testing.T) {
		s := open(t)
		for _, q := range []storage.ProfileQuery{
			{Kind: storage.ProfileCPU, SampleTypes: []string{"cpu"}},
			{Service: "checkout", SampleTypes: []string{"cpu"}},
			{Service: "checkout", Kind: storage.ProfileCPU},
		} {
			if _, err := s.MergeProfiles(ctx, q); !errors.Is(err, storage.ErrInvalidQuery) {
				t.Errorf("MergeProfiles(%+v): %v, want ErrInvalidQuery", q, err)
			}
		}
	})

	t.Run("InvalidProfile", func(t *testing.T) {
		s := open(t)
		err := s.WriteProfiles(ctx, []storage.Profile{
			prof("checkout", storage.ProfileCPU, 0, nil, PprofBytes(t, cpu, ProfileSample{Stack: []string{"f"}, Values: []int64{1, 1}})),
			prof("checkout", storage.ProfileCPU, 0, nil, []byte("not a pprof")),
		})
		if !errors.Is(err, storage.ErrInvalidProfile) {
			t.Fatalf("WriteProfiles of junk: %v, want ErrInvalidProfile", err)
		}
		m, err := s.MergeProfiles(ctx, storage.ProfileQuery{Service: "checkout", Kind: storage.ProfileCPU, SampleTypes: []string{"cpu"}, Start: at(0), End: at(100)})
		if err != nil || len(m.Stacks) != 0 {
			t.Errorf("a refused write stored %d stacks (%v); nothing of it should be", len(m.Stacks), err)
		}
	})

	t.Run("Services", func(t *testing.T) {
		s := written(t)
		got, err := s.ProfileServices(ctx, at(0), at(100))
		if err != nil {
			t.Fatal(err)
		}
		want := []storage.ProfileService{
			{Service: "checkout", Kinds: []string{storage.ProfileCPU, storage.ProfileMemory}},
			{Service: "odd", Kinds: []string{storage.ProfileGoroutine}},
			{Service: "payments", Kinds: []string{storage.ProfileCPU}},
		}
		if !slices.EqualFunc(got, want, func(a, b storage.ProfileService) bool {
			return a.Service == b.Service && slices.Equal(a.Kinds, b.Kinds)
		}) {
			t.Errorf("got %+v, want %+v", got, want)
		}
		if got, err := s.ProfileServices(ctx, at(1000), at(2000)); err != nil || len(got) != 0 {
			t.Errorf("outside the range: %+v, %v; want none", got, err)
		}
	})

	t.Run("SharedStacks", func(t *testing.T) {
		// The same stack in many writes is one stack of the merge.
		s := open(t)
		for i := range 5 {
			data := PprofBytes(t, cpu, ProfileSample{Stack: []string{"f", "main"}, Values: []int64{1, 10}})
			if err := s.WriteProfiles(ctx, []storage.Profile{prof("svc", storage.ProfileCPU, i*10, nil, data)}); err != nil {
				t.Fatal(err)
			}
		}
		m, err := s.MergeProfiles(ctx, storage.ProfileQuery{Service: "svc", Kind: storage.ProfileCPU, SampleTypes: []string{"cpu"}, Start: at(0), End: at(100)})
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Stacks) != 1 || m.Stacks[0].Value != 50 || m.Profiles != 5 {
			var names []string
			for _, st := range m.Stacks {
				names = append(names, st.Frames[0].Function)
			}
			t.Errorf("got %d stacks (%s) from %d profiles, want one of 50 from 5", len(m.Stacks), strings.Join(names, ","), m.Profiles)
		}
	})

	t.Run("EmptyWrite", func(t *testing.T) {
		s := open(t)
		if err := s.WriteProfiles(ctx, nil); err != nil {
			t.Fatalf("WriteProfiles(nil): %v", err)
		}
	})
}
