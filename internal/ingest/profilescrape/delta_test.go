package profilescrape

import (
	"hash/fnv"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/google/pprof/profile"
)

var memTypes = []string{"alloc_objects", "alloc_space", "inuse_objects", "inuse_space"}

// mkProfile builds a profile of the given sample types whose samples are
// stacks ("main.a;main.b", innermost last) with their values. Addresses
// are per function (addressOf).
func mkProfile(types []string, samples map[string][]int64) *profile.Profile {
	p := &profile.Profile{}
	for _, t := range types {
		p.SampleType = append(p.SampleType, &profile.ValueType{Type: t, Unit: "count"})
	}
	funcs := map[string]*profile.Function{}
	locs := map[string]*profile.Location{}
	for _, stack := range slices.Sorted(maps.Keys(samples)) {
		s := &profile.Sample{Value: slices.Clone(samples[stack])}
		names := strings.Split(stack, ";")
		for i := len(names) - 1; i >= 0; i-- { // pprof: innermost first
			n := names[i]
			if locs[n] == nil {
				f := &profile.Function{ID: uint64(len(funcs) + 1), Name: n}
				funcs[n] = f
				p.Function = append(p.Function, f)
				l := &profile.Location{ID: uint64(len(locs) + 1), Address: addressOf(n), Line: []profile.Line{{Function: f, Line: 1}}}
				locs[n] = l
				p.Location = append(p.Location, l)
			}
			s.Location = append(s.Location, locs[n])
		}
		p.Sample = append(p.Sample, s)
	}
	return p
}

// addressOf is a function's address, the same in every profile, as in
// the scrapes of one process.
func addressOf(name string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(name))
	return h.Sum64() &^ 0xfff
}

// stacks reads a profile back into mkProfile's form.
func stacks(p *profile.Profile) map[string][]int64 {
	out := map[string][]int64{}
	for _, s := range p.Sample {
		var names []string
		for i := len(s.Location) - 1; i >= 0; i-- {
			names = append(names, s.Location[i].Line[0].Function.Name)
		}
		out[strings.Join(names, ";")] = s.Value
	}
	return out
}

func TestDelta(t *testing.T) {
	for _, tc := range []struct {
		name  string
		types []string
		// prev is the previous scrape; nil for a target's first.
		prev, cur   map[string][]int64
		want        map[string][]int64
		wantOutcome deltaOutcome
	}{
		{
			name:  "first scrape keeps in-use, zeroes what counts since start",
			types: memTypes,
			cur: map[string][]int64{
				"main.main;main.leak": {10, 1000, 2, 200},
				"main.main;main.temp": {50, 5000, 0, 0}, // nothing in use: nothing left
			},
			want:        map[string][]int64{"main.main;main.leak": {0, 0, 2, 200}},
			wantOutcome: first,
		},
		{
			name:  "second scrape stores the growth of alloc_*, in-use as is",
			types: memTypes,
			prev: map[string][]int64{
				"main.main;main.leak": {10, 1000, 2, 200},
				"main.main;main.temp": {50, 5000, 0, 0},
				"main.main;main.idle": {7, 700, 1, 100},
			},
			cur: map[string][]int64{
				"main.main;main.leak": {15, 1500, 7, 700},
				"main.main;main.temp": {80, 8000, 0, 0},
				"main.main;main.idle": {7, 700, 1, 100}, // no growth, still in use
				"main.main;main.new":  {3, 300, 3, 300}, // first seen: all of it is new
			},
			want: map[string][]int64{
				"main.main;main.leak": {5, 500, 7, 700},
				"main.main;main.temp": {30, 3000, 0, 0},
				"main.main;main.idle": {0, 0, 1, 100},
				"main.main;main.new":  {3, 300, 3, 300},
			},
			wantOutcome: subtracted,
		},
		{
			name:  "a stack that grew by nothing and holds nothing is dropped",
			types: memTypes,
			prev:  map[string][]int64{"main.main;main.done": {4, 400, 0, 0}, "main.main;main.busy": {1, 100, 0, 0}},
			cur:   map[string][]int64{"main.main;main.done": {4, 400, 0, 0}, "main.main;main.busy": {2, 200, 0, 0}},
			want:  map[string][]int64{"main.main;main.busy": {1, 100, 0, 0}},
			// Not a reset: the totals grew.
			wantOutcome: subtracted,
		},
		{
			name:  "one stack counting less (rescaled sampling) grew by nothing, not by a negative",
			types: memTypes,
			prev:  map[string][]int64{"main.main;main.a": {10, 1000, 0, 0}, "main.main;main.b": {10, 1000, 0, 0}},
			cur:   map[string][]int64{"main.main;main.a": {9, 990, 0, 0}, "main.main;main.b": {30, 3000, 0, 0}},
			want:  map[string][]int64{"main.main;main.b": {20, 2000, 0, 0}},
			// The totals grew (39 > 20, 3990 > 2000).
			wantOutcome: subtracted,
		},
		{
			name:  "counter reset: the process restarted, the profile is stored as is",
			types: memTypes,
			prev:  map[string][]int64{"main.main;main.leak": {1000, 100000, 50, 5000}},
			cur:   map[string][]int64{"main.main;main.leak": {3, 300, 3, 300}, "main.main;main.init": {1, 10, 0, 0}},
			want: map[string][]int64{
				"main.main;main.leak": {3, 300, 3, 300},
				"main.main;main.init": {1, 10, 0, 0},
			},
			wantOutcome: reset,
		},
		{
			name:        "mutex: both sample types count since start",
			types:       []string{"contentions", "delay"},
			prev:        map[string][]int64{"main.main;sync.(*Mutex).Lock": {4, 4000}},
			cur:         map[string][]int64{"main.main;sync.(*Mutex).Lock": {6, 9000}},
			want:        map[string][]int64{"main.main;sync.(*Mutex).Lock": {2, 5000}},
			wantOutcome: subtracted,
		},
		{
			name:        "mutex, first scrape: nothing to store",
			types:       []string{"contentions", "delay"},
			cur:         map[string][]int64{"main.main;sync.(*Mutex).Lock": {6, 9000}},
			want:        map[string][]int64{},
			wantOutcome: first,
		},
		{
			name:        "goroutines are a state: as is",
			types:       []string{"goroutine"},
			prev:        map[string][]int64{"main.main;main.worker": {8}},
			cur:         map[string][]int64{"main.main;main.worker": {5}},
			want:        map[string][]int64{"main.main;main.worker": {5}},
			wantOutcome: asIs,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var prev *cumulative
			if tc.prev != nil {
				var o deltaOutcome
				prev, o = delta(mkProfile(tc.types, tc.prev), nil)
				if tc.wantOutcome != asIs && o != first {
					t.Fatalf("the previous scrape alone: outcome %v, want first", o)
				}
			}
			p := mkProfile(tc.types, tc.cur)
			next, outcome := delta(p, prev)
			if outcome != tc.wantOutcome {
				t.Errorf("outcome %v, want %v", outcome, tc.wantOutcome)
			}
			if got := stacks(p); !maps.EqualFunc(got, tc.want, slices.Equal) {
				t.Errorf("stored\n%v\nwant\n%v", got, tc.want)
			}
			for _, s := range p.Sample {
				for _, v := range s.Value {
					if v < 0 {
						t.Errorf("negative value stored: %v", s.Value)
					}
				}
			}
			if (next == nil) != (tc.wantOutcome == asIs) {
				t.Errorf("next state %v for outcome %v", next, outcome)
			}
		})
	}
}

// The state a scrape leaves is what the profile counted, not what was
// stored: the next scrape subtracts from the counts, so a third scrape
// stores the growth since the second.
func TestDeltaChain(t *testing.T) {
	s1 := mkProfile(memTypes, map[string][]int64{"main.f": {1, 100, 1, 100}})
	state, _ := delta(s1, nil)
	s2 := mkProfile(memTypes, map[string][]int64{"main.f": {3, 300, 1, 100}})
	state, _ = delta(s2, state)
	s3 := mkProfile(memTypes, map[string][]int64{"main.f": {6, 600, 2, 200}})
	_, outcome := delta(s3, state)
	if got := stacks(s3)["main.f"]; outcome != subtracted || !slices.Equal(got, []int64{3, 300, 2, 200}) {
		t.Errorf("third scrape stored %v (%v), want [3 300 2 200]", got, outcome)
	}
}
