package profileapi

import (
	"context"
	"time"

	"github.com/google/pprof/profile"

	"github.com/vigil-observability/vigil/internal/profiletype"
	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/pprofrows"
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

// Merged is a merged view: one pprof of the selected sample type, nil
// when nothing matched.
type Merged struct {
	Profile *profile.Profile
	// Profiles is how many stored profiles contributed samples.
	Profiles int
}

// Merge asks the store for the selected samples summed by stack and builds
// a pprof of them covering the selection's range.
func Merge(ctx context.Context, r storage.ProfileReader, sel Selection) (Merged, error) {
	m, err := r.MergeProfiles(ctx, storage.ProfileQuery{
		Service: sel.Service, Kind: sel.Type.Kind, SampleTypes: sel.Type.SampleTypes(),
		Start: sel.Start, End: sel.End, Labels: sel.Labels, SpanID: sel.SpanID,
	})
	if err != nil || len(m.Stacks) == 0 {
		return Merged{}, err
	}
	p := pprofrows.ToProfile(m, sel.Type.Name, sel.Type.Unit)
	if sel.SpanID != "" {
		// Every sample is the span's: say so, as the uploaded ones did.
		for _, smp := range p.Sample {
			smp.Label = map[string][]string{pprofrows.SpanIDLabel: {sel.SpanID}}
		}
	}
	p.TimeNanos = sel.Start.UnixNano()
	p.DurationNanos = sel.End.Sub(sel.Start).Nanoseconds()
	return Merged{Profile: p, Profiles: m.Profiles}, nil
}
