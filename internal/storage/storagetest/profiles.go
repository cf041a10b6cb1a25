package storagetest

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/vigil-observability/vigil/internal/storage"
)

// RunProfileStore is the conformance suite of profile backends: open
// returns a new, empty store, closed by the caller's cleanup.
func RunProfileStore(t *testing.T, open func(t *testing.T) storage.ProfileStore) {
	ctx := context.Background()
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(sec int) time.Time { return base.Add(time.Duration(sec) * time.Second) }
	profile := func(svc, kind string, startSec int, labels map[string]string, spans []string, data string) storage.Profile {
		return storage.Profile{
			Service: svc, Kind: kind, Start: at(startSec), End: at(startSec + 10),
			Labels: labels, SpanIDs: spans, Data: []byte(data),
		}
	}
	fixture := []storage.Profile{
		profile("checkout", storage.ProfileCPU, 0, map[string]string{"env": "prod", "region": "eu"}, []string{"00000000000000a1", "00000000000000a2"}, "p0"),
		profile("checkout", storage.ProfileCPU, 10, map[string]string{"env": "prod", "region": "us"}, []string{"00000000000000a3"}, "p1"),
		profile("checkout", storage.ProfileCPU, 20, map[string]string{"env": "dev"}, nil, "p2"),
		profile("checkout", storage.ProfileMemory, 0, map[string]string{"env": "prod"}, nil, "m0"),
		profile("payments", storage.ProfileCPU, 0, nil, []string{"00000000000000b1"}, "q0"),
		// A label value with the store's separators stays one label.
		profile("odd", storage.ProfileGoroutine, 0, map[string]string{"k": "a=b|c\x1fd"}, nil, "o0"),
	}
	find := func(t *testing.T, s storage.ProfileReader, q storage.ProfileQuery) []string {
		t.Helper()
		var got []string
		for p, err := range s.FindProfiles(ctx, q) {
			if err != nil {
				t.Fatalf("FindProfiles(%+v): %v", q, err)
			}
			if p.Service != q.Service || p.Kind != q.Kind {
				t.Errorf("profile of %s/%s for a query of %s/%s", p.Service, p.Kind, q.Service, q.Kind)
			}
			got = append(got, string(p.Data))
		}
		return got
	}
	written := func(t *testing.T) storage.ProfileStore {
		s := open(t)
		if err := s.WriteProfiles(ctx, fixture); err != nil {
			t.Fatalf("WriteProfiles: %v", err)
		}
		return s
	}

	t.Run("RoundTrip", func(t *testing.T) {
		s := written(t)
		var got []storage.Profile
		for p, err := range s.FindProfiles(ctx, storage.ProfileQuery{Service: "checkout", Kind: storage.ProfileCPU, Start: at(0), End: at(5)}) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, p)
		}
		if len(got) != 1 {
			t.Fatalf("got %d profiles, want 1", len(got))
		}
		want := fixture[0]
		p := got[0]
		if !p.Start.Equal(want.Start) || !p.End.Equal(want.End) || !bytes.Equal(p.Data, want.Data) {
			t.Errorf("got %v..%v %q, want %v..%v %q", p.Start, p.End, p.Data, want.Start, want.End, want.Data)
		}
		if len(p.Labels) != 2 || p.Labels["env"] != "prod" || p.Labels["region"] != "eu" {
			t.Errorf("labels %v, want %v", p.Labels, want.Labels)
		}
		if !slices.Equal(p.SpanIDs, want.SpanIDs) {
			t.Errorf("span ids %v, want %v", p.SpanIDs, want.SpanIDs)
		}
	})

	t.Run("Select", func(t *testing.T) {
		s := written(t)
		for _, tc := range []struct {
			name string
			q    storage.ProfileQuery
			want []string
		}{
			{"all of a kind, newest first", storage.ProfileQuery{Service: "checkout", Kind: storage.ProfileCPU, Start: at(0), End: at(100)}, []string{"p2", "p1", "p0"}},
			{"other kind", storage.ProfileQuery{Service: "checkout", Kind: storage.ProfileMemory, Start: at(0), End: at(100)}, []string{"m0"}},
			{"overlap at the edges", storage.ProfileQuery{Service: "checkout", Kind: storage.ProfileCPU, Start: at(10), End: at(20)}, []string{"p2", "p1", "p0"}},
			{"inside one", storage.ProfileQuery{Service: "checkout", Kind: storage.ProfileCPU, Start: at(12), End: at(13)}, []string{"p1"}},
			{"before all", storage.ProfileQuery{Service: "checkout", Kind: storage.ProfileCPU, Start: at(-100), End: at(-1)}, nil},
			{"label", storage.ProfileQuery{Service: "checkout", Kind: storage.ProfileCPU, Start: at(0), End: at(100), Labels: map[string]string{"env": "prod"}}, []string{"p1", "p0"}},
			{"labels", storage.ProfileQuery{Service: "checkout", Kind: storage.ProfileCPU, Start: at(0), End: at(100), Labels: map[string]string{"env": "prod", "region": "us"}}, []string{"p1"}},
			{"label value is whole", storage.ProfileQuery{Service: "checkout", Kind: storage.ProfileCPU, Start: at(0), End: at(100), Labels: map[string]string{"env": "pro"}}, nil},
			{"odd label value", storage.ProfileQuery{Service: "odd", Kind: storage.ProfileGoroutine, Start: at(0), End: at(100), Labels: map[string]string{"k": "a=b|c\x1fd"}}, []string{"o0"}},
			{"span", storage.ProfileQuery{Service: "checkout", Kind: storage.ProfileCPU, Start: at(0), End: at(100), SpanID: "00000000000000a2"}, []string{"p0"}},
			{"span of another service", storage.ProfileQuery{Service: "checkout", Kind: storage.ProfileCPU, Start: at(0), End: at(100), SpanID: "00000000000000b1"}, nil},
			{"span id is whole", storage.ProfileQuery{Service: "checkout", Kind: storage.ProfileCPU, Start: at(0), End: at(100), SpanID: "00000000000000a"}, nil},
			{"limit keeps the newest", storage.ProfileQuery{Service: "checkout", Kind: storage.ProfileCPU, Start: at(0), End: at(100), Limit: 2}, []string{"p2", "p1"}},
			{"unknown service", storage.ProfileQuery{Service: "nope", Kind: storage.ProfileCPU, Start: at(0), End: at(100)}, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if got := find(t, s, tc.q); !slices.Equal(got, tc.want) {
					t.Errorf("got %q, want %q", got, tc.want)
				}
			})
		}
	})

	t.Run("InvalidQuery", func(t *testing.T) {
		s := open(t)
		for _, q := range []storage.ProfileQuery{{Kind: storage.ProfileCPU}, {Service: "checkout"}} {
			for _, err := range s.FindProfiles(ctx, q) {
				if !errors.Is(err, storage.ErrInvalidQuery) {
					t.Errorf("FindProfiles(%+v): %v, want ErrInvalidQuery", q, err)
				}
			}
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

	t.Run("EmptyWrite", func(t *testing.T) {
		s := open(t)
		if err := s.WriteProfiles(ctx, nil); err != nil {
			t.Fatalf("WriteProfiles(nil): %v", err)
		}
	})
}
