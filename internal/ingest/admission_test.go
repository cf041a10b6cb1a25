package ingest

import (
	"errors"
	"testing"
)

type pressure bool

func (p *pressure) Pressure() bool { return bool(*p) }

func TestAdmission(t *testing.T) {
	tests := []struct {
		name        string
		maxInFlight int
		pressure    bool
		// held requests are admitted and kept; then one more is tried.
		held    int
		wantErr error
	}{
		{"a free slot", 2, false, 1, nil},
		{"every slot taken", 2, false, 2, ErrTooManyInFlight},
		{"zero means the default", 0, false, DefaultMaxRequestsInFlight - 1, nil},
		{"the default is a bound", 0, false, DefaultMaxRequestsInFlight, ErrTooManyInFlight},
		{"memory pressure refuses with slots free", 2, true, 0, ErrNearMemoryLimit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := pressure(false)
			a := NewAdmission(AdmissionOptions{MaxInFlight: tt.maxInFlight, Memory: &p})
			for i := range tt.held {
				if _, err := a.Admit(); err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
			}
			p = pressure(tt.pressure)
			release, err := a.Admit()
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Admit: %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if !errors.Is(err, ErrOverloaded) {
					t.Errorf("%v does not wrap ErrOverloaded: clients would not be told to retry", err)
				}
				if release != nil {
					t.Error("a refused request got a release")
				}
			}
		})
	}
}

// A released slot is free for the next request.
func TestAdmissionRelease(t *testing.T) {
	a := NewAdmission(AdmissionOptions{MaxInFlight: 1})
	release, err := a.Admit()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Admit(); !errors.Is(err, ErrTooManyInFlight) {
		t.Fatalf("second Admit while the slot is held: %v", err)
	}
	release()
	if _, err := a.Admit(); err != nil {
		t.Fatalf("Admit after release: %v", err)
	}
}
