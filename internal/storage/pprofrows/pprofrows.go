// Package pprofrows turns a pprof into what profile stores keep: its
// samples as stacks of frames with their values and span id, and a merged
// profile's stacks back into a pprof.
package pprofrows

import (
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/google/pprof/profile"

	"github.com/vigil-observability/vigil/internal/storage"
)

// SpanIDLabel is the pprof label otel-profiling-go puts on the samples
// taken inside a (root) span.
const SpanIDLabel = "span_id"

// Sample is one pprof sample.
type Sample struct {
	// Frames are innermost first.
	Frames []storage.ProfileFrame
	// Values are in the order of the profile's sample types.
	Values []int64
	// SpanID is the sample's span_id label, or "".
	SpanID string
}

// Decompose parses data (a pprof, gzipped or not) into its sample type
// names and samples.
func Decompose(data []byte) (sampleTypes []string, samples []Sample, err error) {
	p, err := profile.ParseData(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", storage.ErrInvalidProfile, err)
	}
	return FromProfile(p)
}

// FromProfile is Decompose of a parsed profile.
func FromProfile(p *profile.Profile) (sampleTypes []string, samples []Sample, err error) {
	for _, st := range p.SampleType {
		sampleTypes = append(sampleTypes, st.Type)
	}
	// Locations are shared by samples: their frames are built once.
	frames := map[*profile.Location][]storage.ProfileFrame{}
	for _, s := range p.Sample {
		if len(s.Value) != len(sampleTypes) {
			return nil, nil, fmt.Errorf("%w: a sample has %d values for %d sample types", storage.ErrInvalidProfile, len(s.Value), len(sampleTypes))
		}
		out := Sample{Values: s.Value}
		if ids := s.Label[SpanIDLabel]; len(ids) > 0 {
			out.SpanID = ids[0]
		}
		for _, loc := range s.Location {
			fs, ok := frames[loc]
			if !ok {
				fs = locationFrames(loc)
				frames[loc] = fs
			}
			out.Frames = append(out.Frames, fs...)
		}
		samples = append(samples, out)
	}
	return sampleTypes, samples, nil
}

// locationFrames are a location's frames, innermost first; an
// unsymbolised location is one frame named by its address.
func locationFrames(loc *profile.Location) []storage.ProfileFrame {
	var out []storage.ProfileFrame
	for _, line := range loc.Line {
		if line.Function == nil {
			continue
		}
		out = append(out, storage.ProfileFrame{Function: line.Function.Name, File: line.Function.Filename, Line: line.Line})
	}
	if len(out) == 0 {
		name := "0x" + strconv.FormatUint(loc.Address, 16)
		file := ""
		if loc.Mapping != nil {
			file = loc.Mapping.File
		}
		out = append(out, storage.ProfileFrame{Function: name, File: file})
	}
	return out
}

// ToProfile builds a pprof of one sample type from a merged profile's
// stacks: what go tool pprof opens.
func ToProfile(m storage.MergedProfile, sampleType, unit string) *profile.Profile {
	vt := &profile.ValueType{Type: sampleType, Unit: unit}
	p := &profile.Profile{SampleType: []*profile.ValueType{vt}, PeriodType: &profile.ValueType{Type: sampleType, Unit: unit}, Period: 1}
	type fnKey struct{ name, file string }
	fns := map[fnKey]*profile.Function{}
	locs := map[storage.ProfileFrame]*profile.Location{}
	for _, st := range m.Stacks {
		s := &profile.Sample{Value: []int64{st.Value}}
		for _, f := range st.Frames {
			loc := locs[f]
			if loc == nil {
				fn := fns[fnKey{f.Function, f.File}]
				if fn == nil {
					fn = &profile.Function{ID: uint64(len(p.Function) + 1), Name: f.Function, SystemName: f.Function, Filename: f.File}
					fns[fnKey{f.Function, f.File}] = fn
					p.Function = append(p.Function, fn)
				}
				loc = &profile.Location{ID: uint64(len(p.Location) + 1), Line: []profile.Line{{Function: fn, Line: f.Line}}}
				locs[f] = loc
				p.Location = append(p.Location, loc)
			}
			s.Location = append(s.Location, loc)
		}
		p.Sample = append(p.Sample, s)
	}
	return p
}

// Stores keep a stack as one string and a profile's labels as one
// string: a stack's frames are "function\x1ffile\x1fline" joined by
// "\x1e", innermost first; labels are "\x1fk=v\x1fk2=v2\x1f" sorted by
// key, each closed by the separator on both sides, so that a label filter
// is one substring test (LabelFilter).
const (
	fieldSep = "\x1f"
	frameSep = "\x1e"
)

var frameCleaner = strings.NewReplacer(fieldSep, " ", frameSep, " ")

// EncodeFrames appends frames, encoded, to sb.
func EncodeFrames(sb *strings.Builder, frames []storage.ProfileFrame) {
	for i, f := range frames {
		if i > 0 {
			sb.WriteString(frameSep)
		}
		sb.WriteString(frameCleaner.Replace(f.Function))
		sb.WriteString(fieldSep)
		sb.WriteString(frameCleaner.Replace(f.File))
		sb.WriteString(fieldSep)
		sb.WriteString(strconv.FormatInt(f.Line, 10))
	}
}

// DecodeFrames is the inverse of EncodeFrames.
func DecodeFrames(s string) []storage.ProfileFrame {
	parts := strings.Split(s, frameSep)
	out := make([]storage.ProfileFrame, 0, len(parts))
	for _, p := range parts {
		fn, rest, _ := strings.Cut(p, fieldSep)
		file, line, _ := strings.Cut(rest, fieldSep)
		n, _ := strconv.ParseInt(line, 10, 64)
		out = append(out, storage.ProfileFrame{Function: fn, File: file, Line: n})
	}
	return out
}

// StackID is the id of an encoded stack.
func StackID(encoded string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(encoded))
	return h.Sum64()
}

// cleanName keeps the separators out of a label name: the first '='
// separates name from value.
func cleanName(s string) string {
	return strings.NewReplacer(fieldSep, " ", "=", "_").Replace(s)
}

func cleanValue(s string) string { return strings.ReplaceAll(s, fieldSep, " ") }

// EncodeLabels encodes a profile's labels.
func EncodeLabels(labels map[string]string) string {
	var sb strings.Builder
	sb.WriteString(fieldSep)
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		sb.WriteString(cleanName(k))
		sb.WriteByte('=')
		sb.WriteString(cleanValue(labels[k]))
		sb.WriteString(fieldSep)
	}
	return sb.String()
}

// LabelFilter is the substring an encoded label set holds when it has
// label k with value v.
func LabelFilter(k, v string) string {
	return fieldSep + cleanName(k) + "=" + cleanValue(v) + fieldSep
}
