package memory

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/pprofrows"
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
	for _, p := range profiles {
		if _, _, err := pprofrows.Decompose(p.Data); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range profiles {
		p.Labels = maps.Clone(p.Labels)
		p.Data = slices.Clone(p.Data)
		s.profiles = append(s.profiles, p)
	}
	return nil
}

// MergeProfiles parses every matching profile and sums the selected
// samples by stack.
func (s *ProfileStore) MergeProfiles(_ context.Context, q storage.ProfileQuery) (storage.MergedProfile, error) {
	var out storage.MergedProfile
	if q.Service == "" || q.Kind == "" || len(q.SampleTypes) == 0 {
		return out, fmt.Errorf("%w: a profile query needs a service, a kind and a sample type", storage.ErrInvalidQuery)
	}
	s.mu.Lock()
	var match []storage.Profile
	for _, p := range s.profiles {
		if p.Service != q.Service || p.Kind != q.Kind || p.End.Before(q.Start) || p.Start.After(q.End) {
			continue
		}
		ok := true
		for k, v := range q.Labels {
			if got, has := p.Labels[k]; !has || got != v {
				ok = false
			}
		}
		if ok {
			match = append(match, p)
		}
	}
	s.mu.Unlock()
	type entry struct {
		frames []storage.ProfileFrame
		value  int64
	}
	byStack := map[string]*entry{}
	for _, p := range match {
		types, samples, err := pprofrows.Decompose(p.Data)
		if err != nil {
			return out, err
		}
		idx := slices.IndexFunc(types, func(t string) bool { return slices.Contains(q.SampleTypes, t) })
		if idx < 0 {
			continue
		}
		contributed := false
		for _, smp := range samples {
			if (q.SpanID != "" && smp.SpanID != q.SpanID) || smp.Values[idx] == 0 {
				continue
			}
			key := fmt.Sprint(smp.Frames)
			e := byStack[key]
			if e == nil {
				e = &entry{frames: smp.Frames}
				byStack[key] = e
			}
			e.value += smp.Values[idx]
			contributed = true
		}
		if contributed {
			out.Profiles++
		}
	}
	for _, e := range byStack {
		if e.value != 0 {
			out.Stacks = append(out.Stacks, storage.ProfileStack{Frames: e.frames, Value: e.value})
		}
	}
	return out, nil
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
