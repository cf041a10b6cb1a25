package profilescrape

import (
	"encoding/binary"
	"hash/maphash"
	"maps"
	"slices"

	"github.com/google/pprof/profile"
)

// cumulativeTypes are the sample types Go's runtime counts from the
// process's start (allocations, contentions and their delay): a scrape
// stores what they grew by since the previous scrape of the target, as
// Pyroscope's and Parca's scrapers do. inuse_* and goroutines are the
// state at the scrape and stored as they come; a CPU profile covers its
// own seconds.
var cumulativeTypes = map[string]bool{
	"alloc_objects": true, "alloc_space": true,
	"contentions": true, "delay": true,
}

// cumulative is what a target's previous scrape of one profile counted,
// by stack: only the cumulative sample types' values, not the profile.
type cumulative struct {
	types  []string           // every sample type, in order
	index  []int              // the cumulative ones' positions in types
	totals []int64            // their sums, by position in index
	values map[uint64][]int64 // by sampleKey, by position in index
}

// deltaOutcome says what delta did with a profile.
type deltaOutcome int

const (
	// asIs: no cumulative sample types; nothing to subtract.
	asIs deltaOutcome = iota
	// first: no previous scrape to subtract; the cumulative values,
	// which cover the process's whole life, were zeroed.
	first
	// subtracted: the previous scrape's values were subtracted.
	subtracted
	// reset: a cumulative total fell (the process restarted, or the
	// profile changed shape); everything it counts is since then, kept
	// as is.
	reset
)

func (o deltaOutcome) String() string {
	return [...]string{"as_is", "first", "subtracted", "reset"}[o]
}

// delta changes p (as scraped) into what its cumulative sample types grew
// by since prev, dropping the samples left at zero, and returns what the
// next scrape subtracts. p's other sample types are left alone. A stack
// that counts less than before (the runtime rescales sampled allocations
// as their mean size changes) grew by nothing.
func delta(p *profile.Profile, prev *cumulative) (*cumulative, deltaOutcome) {
	types := make([]string, len(p.SampleType))
	var index []int
	for i, st := range p.SampleType {
		types[i] = st.Type
		if cumulativeTypes[st.Type] {
			index = append(index, i)
		}
	}
	if len(index) == 0 {
		return nil, asIs
	}
	next := &cumulative{types: types, index: index, totals: make([]int64, len(index)), values: make(map[uint64][]int64, len(p.Sample))}
	keys := make([]uint64, len(p.Sample))
	for n, s := range p.Sample {
		k := sampleKey(s)
		keys[n] = k
		v := next.values[k]
		if v == nil {
			v = make([]int64, len(index))
			next.values[k] = v
		}
		for j, i := range index {
			v[j] += s.Value[i]
			next.totals[j] += s.Value[i]
		}
	}

	outcome := subtracted
	switch {
	case prev == nil:
		outcome = first
	case !slices.Equal(prev.types, types):
		outcome = reset
	default:
		for j := range index {
			if next.totals[j] < prev.totals[j] {
				outcome = reset
			}
		}
	}
	if outcome == reset {
		return next, reset
	}

	// What each stack grew by: the previous count is taken once per
	// stack (from its first sample, should one stack appear twice).
	taken := make(map[uint64]bool, len(p.Sample))
	kept := p.Sample[:0]
	for n, s := range p.Sample {
		k := keys[n]
		var before []int64
		if outcome == subtracted && !taken[k] {
			before = prev.values[k]
			taken[k] = true
		}
		for j, i := range index {
			switch {
			case outcome == first:
				s.Value[i] = 0
			case before != nil:
				s.Value[i] = max(s.Value[i]-before[j], 0)
			}
		}
		if slices.ContainsFunc(s.Value, func(v int64) bool { return v != 0 }) {
			kept = append(kept, s)
		}
	}
	clear(p.Sample[len(kept):])
	p.Sample = kept
	return next, outcome
}

// keySeed seeds sampleKey's hash; the counts it keys live only in this
// process's memory.
var keySeed = maphash.MakeSeed()

// sampleKey identifies a sample's stack and labels across two profiles of
// one process: a hash of the locations' addresses and their functions and
// lines (ids differ from profile to profile), then the labels, sorted. A
// hash rather than the text: building the text was half of a large
// profile's delta. Two stacks colliding (one in 2^64 per pair) would
// subtract one's count from the other's, clamped at zero.
func sampleKey(s *profile.Sample) uint64 {
	var h maphash.Hash
	h.SetSeed(keySeed)
	var buf [8]byte
	for _, loc := range s.Location {
		binary.LittleEndian.PutUint64(buf[:], loc.Address)
		_, _ = h.Write(buf[:])
		for _, ln := range loc.Line {
			if ln.Function != nil {
				_, _ = h.WriteString(ln.Function.Name)
			}
			binary.LittleEndian.PutUint64(buf[:], uint64(ln.Line))
			_, _ = h.Write(buf[:])
		}
		_ = h.WriteByte(';')
	}
	for _, k := range sortedKeys(s.Label) {
		_, _ = h.WriteString("#" + k)
		for _, v := range s.Label[k] {
			_, _ = h.WriteString("=" + v)
		}
	}
	for _, k := range sortedKeys(s.NumLabel) {
		_, _ = h.WriteString("#" + k)
		for _, v := range s.NumLabel[k] {
			binary.LittleEndian.PutUint64(buf[:], uint64(v))
			_, _ = h.Write(buf[:])
		}
	}
	return h.Sum64()
}

// sortedKeys are m's keys, sorted; nothing allocated for the usual one
// or none.
func sortedKeys[V any](m map[string]V) []string {
	if len(m) <= 1 {
		for k := range m {
			return []string{k}
		}
		return nil
	}
	return slices.Sorted(maps.Keys(m))
}
