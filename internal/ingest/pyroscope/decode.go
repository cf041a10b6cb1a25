package pyroscope

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/google/pprof/profile"
	"github.com/klauspost/compress/gzip"
	"google.golang.org/protobuf/encoding/protowire"
)

// ProfileLimits bound one pprof: what it may take once decompressed, and
// how many of each table it may hold (what parsing it costs grows with
// these counts, not with the bytes alone).
type ProfileLimits struct {
	// MaxBytes is the most a pprof may hold decompressed.
	MaxBytes int64
	// MaxLocations, MaxFunctions and MaxSamples bound its tables; a
	// profile of a real Go program holds a few thousand of each.
	MaxLocations, MaxFunctions, MaxSamples int
}

// Defaults of ProfileLimits.
const (
	DefaultMaxProfileBytes = 32 << 20
	DefaultMaxLocations    = 200_000
	DefaultMaxFunctions    = 200_000
	DefaultMaxSamples      = 1_000_000
)

// WithDefaults fills zero fields with their defaults.
func (l ProfileLimits) WithDefaults() ProfileLimits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxProfileBytes
	}
	if l.MaxLocations <= 0 {
		l.MaxLocations = DefaultMaxLocations
	}
	if l.MaxFunctions <= 0 {
		l.MaxFunctions = DefaultMaxFunctions
	}
	if l.MaxSamples <= 0 {
		l.MaxSamples = DefaultMaxSamples
	}
	return l
}

var (
	// errTooLarge: past one of ProfileLimits; 413, profile_too_large.
	errTooLarge = errors.New("profile too large")
	// errMalformed: not a pprof; 400, undecodable.
	errMalformed = errors.New("malformed profile")
)

// decompress returns the uncompressed pprof in b (gzipped or not),
// failing with errTooLarge as soon as it passes limit bytes, so that a
// gzip bomb costs at most limit.
func decompress(b []byte, limit int64) ([]byte, error) {
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		if int64(len(b)) > limit {
			return nil, fmt.Errorf("%w: %d bytes, the limit is %d", errTooLarge, len(b), limit)
		}
		return b, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%w: gzip: %v", errMalformed, err)
	}
	var out bytes.Buffer
	n, err := out.ReadFrom(io.LimitReader(zr, limit+1))
	switch {
	case n > limit:
		return nil, fmt.Errorf("%w: more than %d bytes once decompressed", errTooLarge, limit)
	case err != nil:
		return nil, fmt.Errorf("%w: gzip: %v", errMalformed, err)
	}
	return out.Bytes(), nil
}

// The fields of pprof's Profile message that are counted before parsing.
const (
	fieldSample   = 2
	fieldLocation = 4
	fieldFunction = 5
)

// countTables walks the top level of an uncompressed pprof and counts its
// samples, locations and functions without decoding them, so that a
// profile of a million locations is refused before it is parsed.
func countTables(b []byte, lim ProfileLimits) error {
	var samples, locs, funcs int
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: %v", errMalformed, protowire.ParseError(n))
		}
		b = b[n:]
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return fmt.Errorf("%w: %v", errMalformed, protowire.ParseError(n))
		}
		b = b[n:]
		switch num {
		case fieldSample:
			samples++
		case fieldLocation:
			locs++
		case fieldFunction:
			funcs++
		}
	}
	switch {
	case locs > lim.MaxLocations:
		return fmt.Errorf("%w: %d locations, the limit is %d", errTooLarge, locs, lim.MaxLocations)
	case funcs > lim.MaxFunctions:
		return fmt.Errorf("%w: %d functions, the limit is %d", errTooLarge, funcs, lim.MaxFunctions)
	case samples > lim.MaxSamples:
		return fmt.Errorf("%w: %d samples, the limit is %d", errTooLarge, samples, lim.MaxSamples)
	}
	return nil
}

// parseProfile decodes one pprof part within lim.
func parseProfile(b []byte, lim ProfileLimits) (*profile.Profile, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty", errMalformed)
	}
	raw, err := decompress(b, lim.MaxBytes)
	if err != nil {
		return nil, err
	}
	if err := countTables(raw, lim); err != nil {
		return nil, err
	}
	p, err := profile.ParseUncompressed(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errMalformed, err)
	}
	if err := p.CheckValid(); err != nil {
		return nil, fmt.Errorf("%w: %v", errMalformed, err)
	}
	if len(p.SampleType) == 0 {
		return nil, fmt.Errorf("%w: no sample types", errMalformed)
	}
	return p, nil
}

// delta subtracts prev from cur, for the legacy clients that send a
// cumulative profile with the previous one: what the period added.
func delta(cur, prev *profile.Profile) (*profile.Profile, error) {
	prev = prev.Copy()
	prev.Scale(-1)
	d, err := profile.Merge([]*profile.Profile{cur, prev})
	if err != nil {
		return nil, fmt.Errorf("%w: prev_profile does not match profile: %v", errMalformed, err)
	}
	// Counts that fell (a restart in between) say nothing of the period.
	kept := d.Sample[:0]
	for _, s := range d.Sample {
		neg := false
		for _, v := range s.Value {
			neg = neg || v < 0
		}
		if !neg {
			kept = append(kept, s)
		}
	}
	d.Sample = kept
	return d, nil
}

// sampleTypes are p's sample type names.
func sampleTypes(p *profile.Profile) []string {
	out := make([]string, len(p.SampleType))
	for i, st := range p.SampleType {
		out[i] = st.Type
	}
	return out
}

// parseName splits Pyroscope's application name, "app.cpu{k=v,k2=v2}",
// into the application and its labels. Values may be quoted.
func parseName(s string) (app string, labels map[string]string, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", nil, errors.New("name is required: name=app{label=value,...}")
	}
	if !utf8.ValidString(s) {
		return "", nil, errors.New("name is not valid UTF-8")
	}
	open := strings.IndexByte(s, '{')
	if open < 0 {
		return s, map[string]string{}, nil
	}
	app = strings.TrimSpace(s[:open])
	if app == "" {
		return "", nil, fmt.Errorf("name %q has labels but no application", s)
	}
	if !strings.HasSuffix(s, "}") {
		return "", nil, fmt.Errorf("name %q: labels are not closed with }", s)
	}
	labels = map[string]string{}
	body := s[open+1 : len(s)-1]
	for body = strings.TrimSpace(body); body != ""; {
		k, rest, ok := strings.Cut(body, "=")
		if !ok {
			return "", nil, fmt.Errorf("name %q: label %q has no value", s, body)
		}
		k = strings.TrimSpace(k)
		if k == "" {
			return "", nil, fmt.Errorf("name %q: a label has no name", s)
		}
		rest = strings.TrimSpace(rest)
		var v string
		if strings.HasPrefix(rest, `"`) {
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 {
				return "", nil, fmt.Errorf("name %q: unterminated quoted value", s)
			}
			v, rest = rest[1:1+end], rest[2+end:]
			rest = strings.TrimSpace(rest)
			if rest != "" && !strings.HasPrefix(rest, ",") {
				return "", nil, fmt.Errorf("name %q: expected , after the value of %s", s, k)
			}
			rest = strings.TrimPrefix(rest, ",")
		} else {
			v, rest, _ = strings.Cut(rest, ",")
			v = strings.TrimSpace(v)
		}
		labels[k] = v
		body = strings.TrimSpace(rest)
	}
	return app, labels, nil
}
