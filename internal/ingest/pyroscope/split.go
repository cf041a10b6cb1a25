package pyroscope

import (
	"maps"
	"slices"

	"github.com/google/pprof/profile"
)

// serviceLabel is the pprof sample label that names the service a sample
// belongs to. Several services in one process share its one CPU profiler
// (Go allows one per process), so the SDK runs each service's requests
// under this label and the process uploads one profile for all of them.
const serviceLabel = "service_name"

// servicePart is the samples of one service.
type servicePart struct {
	service string
	prof    *profile.Profile
}

// splitByService splits p by its samples' service_name label: the
// samples of each labelled service become a profile of their own, filed
// under that service, and the unlabelled ones stay under app (the
// uploading application's name). The label is removed from the samples,
// as the service it names is the profile's. The common case, no sample
// labelled or all with the same service, returns p itself without copying.
func splitByService(p *profile.Profile, app string) []servicePart {
	if !slices.ContainsFunc(p.Sample, func(s *profile.Sample) bool { _, ok := s.Label[serviceLabel]; return ok }) {
		// A process of one service, or one not using the label: the
		// profile as it came, nothing allocated.
		return []servicePart{{service: app, prof: p}}
	}
	groups := map[string][]*profile.Sample{}
	for _, s := range p.Sample {
		svc := app
		if v := s.Label[serviceLabel]; len(v) > 0 && v[0] != "" {
			svc = v[0]
		}
		groups[svc] = append(groups[svc], s)
	}
	for _, s := range p.Sample {
		if _, ok := s.Label[serviceLabel]; ok {
			delete(s.Label, serviceLabel)
			if len(s.Label) == 0 {
				s.Label = nil
			}
		}
	}
	if len(groups) <= 1 {
		svc := app
		for k := range groups {
			svc = k
		}
		return []servicePart{{service: svc, prof: p}}
	}
	parts := make([]servicePart, 0, len(groups))
	for _, svc := range slices.Sorted(maps.Keys(groups)) {
		// Compact (a merge of one) copies only the locations and
		// functions the part's samples use, so each service stores only
		// its own stacks.
		all := p.Sample
		p.Sample = groups[svc]
		parts = append(parts, servicePart{service: svc, prof: p.Compact()})
		p.Sample = all
	}
	return parts
}
