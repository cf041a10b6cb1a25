package profileapi

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/pprof/profile"

	"github.com/vigil-observability/vigil/internal/profiletype"
	"github.com/vigil-observability/vigil/internal/storage"
)

// Selection is what a merged view is made of.
type Selection struct {
	Service string
	Type    profiletype.Type
	// Start and End bound the profiles merged (those overlapping).
	Start, End time.Time
	// Labels must all match the stored profiles' labels.
	Labels map[string]string
	// SpanID, when set, keeps only the samples taken inside that span.
	SpanID string
}

// Merged is a merged view: one pprof of the selected sample type.
type Merged struct {
	Profile *profile.Profile
	// Profiles is how many stored profiles contributed samples.
	Profiles int
	// Truncated is set when more profiles matched than MaxProfiles: the
	// newest were merged.
	Truncated bool
}

// errNoProfiles: nothing matched.
var errNoProfiles = errors.New("no profiles match")

// mergeBatch is how many parsed profiles are held before they are merged
// into the running result, bounding what a long range holds at once.
const mergeBatch = 64

// Merge reads the selected profiles and merges their samples of the
// selected type into one profile. Profiles of other sample types than the
// selection's are skipped; with SpanID only that span's samples count. It
// reads at most maxProfiles stored profiles (newest first).
func Merge(ctx context.Context, r storage.ProfileReader, sel Selection, maxProfiles int) (Merged, error) {
	q := storage.ProfileQuery{
		Service: sel.Service, Kind: sel.Type.Kind, Start: sel.Start, End: sel.End,
		Labels: sel.Labels, SpanID: sel.SpanID, Limit: maxProfiles + 1,
	}
	var (
		out   Merged
		batch []*profile.Profile
		read  int
		flush = func() error {
			if len(batch) == 0 {
				return nil
			}
			if out.Profile != nil {
				batch = append(batch, out.Profile)
			}
			m, err := profile.Merge(batch)
			if err != nil {
				return fmt.Errorf("merging profiles: %w", err)
			}
			out.Profile, batch = m, batch[:0]
			return nil
		}
	)
	for sp, err := range r.FindProfiles(ctx, q) {
		if err != nil {
			return Merged{}, err
		}
		if read++; read > maxProfiles {
			out.Truncated = true
			break
		}
		p, err := profile.ParseData(sp.Data)
		if err != nil {
			return Merged{}, fmt.Errorf("stored profile of %s at %s: %w", sp.Service, sp.End.Format(time.RFC3339), err)
		}
		if !project(p, sel) {
			continue
		}
		out.Profiles++
		batch = append(batch, p)
		if len(batch) >= mergeBatch {
			if err := flush(); err != nil {
				return Merged{}, err
			}
		}
	}
	if err := flush(); err != nil {
		return Merged{}, err
	}
	if out.Profile == nil {
		return out, errNoProfiles
	}
	out.Profile.TimeNanos = sel.Start.UnixNano()
	out.Profile.DurationNanos = sel.End.Sub(sel.Start).Nanoseconds()
	return out, nil
}

// project keeps only sel's sample type in p, and with sel.SpanID only
// that span's samples; false when nothing is left.
func project(p *profile.Profile, sel Selection) bool {
	names := make([]string, len(p.SampleType))
	for i, st := range p.SampleType {
		names[i] = st.Type
	}
	idx := sel.Type.Index(names)
	if idx < 0 {
		return false
	}
	st := p.SampleType[idx]
	p.SampleType = []*profile.ValueType{{Type: sel.Type.Name, Unit: st.Unit}}
	if p.DefaultSampleType != "" {
		p.DefaultSampleType = sel.Type.Name
	}
	// Profiles of one type from different senders may disagree on the
	// period type; a merge needs one.
	p.PeriodType = &profile.ValueType{Type: sel.Type.Name, Unit: st.Unit}
	kept := p.Sample[:0]
	for _, s := range p.Sample {
		if sel.SpanID != "" && !s.HasLabel("span_id", sel.SpanID) {
			continue
		}
		if v := s.Value[idx]; v != 0 {
			s.Value = []int64{v}
			kept = append(kept, s)
		}
	}
	p.Sample = kept
	return len(kept) > 0
}
