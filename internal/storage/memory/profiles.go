package memory

import (
	"cmp"
	"context"
	"fmt"
	"iter"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/vigil-observability/vigil/internal/storage"
)

// ProfileStore keeps profiles in a slice. Tests only.
type ProfileStore struct {
	mu       sync.Mutex
	profiles []storage.Profile
}

var _ storage.ProfileStore = (*ProfileStore)(nil)

// NewProfileStore returns an empty store.
func NewProfileStore() *ProfileStore { return &ProfileStore{} }

// WriteProfiles keeps copies of profiles.
func (s *ProfileStore) WriteProfiles(_ context.Context, profiles []storage.Profile) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range profiles {
		p.Labels = maps.Clone(p.Labels)
		p.SpanIDs = slices.Clone(p.SpanIDs)
		p.Data = slices.Clone(p.Data)
		s.profiles = append(s.profiles, p)
	}
	return nil
}

// FindProfiles yields the matching profiles newest first.
func (s *ProfileStore) FindProfiles(_ context.Context, q storage.ProfileQuery) iter.Seq2[storage.Profile, error] {
	return func(yield func(storage.Profile, error) bool) {
		if q.Service == "" || q.Kind == "" {
			yield(storage.Profile{}, fmt.Errorf("%w: a profile query needs a service and a kind", storage.ErrInvalidQuery))
			return
		}
		s.mu.Lock()
		var out []storage.Profile
		for _, p := range s.profiles {
			if p.Service != q.Service || p.Kind != q.Kind || p.End.Before(q.Start) || p.Start.After(q.End) {
				continue
			}
			if q.SpanID != "" && !slices.Contains(p.SpanIDs, q.SpanID) {
				continue
			}
			match := true
			for k, v := range q.Labels {
				if got, ok := p.Labels[k]; !ok || got != v {
					match = false
				}
			}
			if match {
				out = append(out, p)
			}
		}
		s.mu.Unlock()
		slices.SortStableFunc(out, func(a, b storage.Profile) int { return b.End.Compare(a.End) })
		if q.Limit > 0 && len(out) > q.Limit {
			out = out[:q.Limit]
		}
		for _, p := range out {
			if !yield(p, nil) {
				return
			}
		}
	}
}

// ProfileServices lists the services and kinds with profiles in the range.
func (s *ProfileStore) ProfileServices(_ context.Context, start, end time.Time) ([]storage.ProfileService, error) {
	s.mu.Lock()
	kinds := map[string]map[string]bool{}
	for _, p := range s.profiles {
		if p.End.Before(start) || p.Start.After(end) {
			continue
		}
		if kinds[p.Service] == nil {
			kinds[p.Service] = map[string]bool{}
		}
		kinds[p.Service][p.Kind] = true
	}
	s.mu.Unlock()
	var out []storage.ProfileService
	for svc, ks := range kinds {
		out = append(out, storage.ProfileService{Service: svc, Kinds: slices.Sorted(maps.Keys(ks))})
	}
	slices.SortFunc(out, func(a, b storage.ProfileService) int { return cmp.Compare(a.Service, b.Service) })
	return out, nil
}

// Close does nothing.
func (s *ProfileStore) Close() error { return nil }
