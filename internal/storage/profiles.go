package storage

import (
	"context"
	"errors"
	"time"
)

// Profile kinds: what a stored profile measures. One upload of a kind may
// hold several sample types (a memory profile holds alloc_space,
// alloc_objects, inuse_space and inuse_objects); queries pick one of them.
const (
	ProfileCPU       = "cpu"
	ProfileMemory    = "memory"
	ProfileGoroutine = "goroutine"
	ProfileMutex     = "mutex"
	ProfileBlock     = "block"
)

// Profile is one uploaded profile: a pprof of one process over one time
// range, with the labels its sender gave it.
type Profile struct {
	Service string
	Kind    string
	// Start and End are the range the profile covers.
	Start, End time.Time
	// Labels are the series labels the sender gave (not the samples'
	// pprof labels), without the service.
	Labels map[string]string
	// Data is the profile in pprof's format, gzipped or not. Its samples'
	// pprof label span_id (set by otel-profiling-go) is kept per sample.
	Data []byte
}

// ProfileQuery selects the samples of stored profiles to merge. Service
// and Kind are required.
type ProfileQuery struct {
	Service string
	Kind    string
	// SampleTypes are the names the wanted sample type goes by (one of
	// them; Go's goroutine profiles say "goroutine", some senders
	// "goroutines"). Required.
	SampleTypes []string
	// Profiles overlapping [Start, End] match.
	Start, End time.Time
	// Labels must all be present with exactly these values.
	Labels map[string]string
	// SpanID, when set, keeps only the samples taken inside that span
	// (those with the pprof label span_id equal to it).
	SpanID string
}

// ProfileFrame is one frame of a stack.
type ProfileFrame struct {
	Function string
	File     string
	Line     int64
}

// ProfileStack is a distinct stack of a merged profile and the sum of its
// samples' values.
type ProfileStack struct {
	// Frames are innermost first, inlined frames included.
	Frames []ProfileFrame
	Value  int64
}

// MergedProfile is the sum of the selected samples, by stack.
type MergedProfile struct {
	// Stacks in no particular order, each once, none with a zero value.
	Stacks []ProfileStack
	// Profiles is how many stored profiles contributed samples.
	Profiles int
}

// ProfileWriter stores profiles. WriteProfiles returns nil only once they
// are durable; it may be called concurrently. A profile whose Data is not
// a pprof fails the write with ErrInvalidProfile.
type ProfileWriter interface {
	WriteProfiles(ctx context.Context, profiles []Profile) error
}

// ErrInvalidProfile means a profile given to WriteProfiles is not a pprof.
var ErrInvalidProfile = errors.New("storage: invalid profile")

// ProfileReader reads stored profiles. MergeProfiles sums the selected
// samples by stack; no match is an empty MergedProfile and no error. A
// query without Service, Kind or SampleTypes fails with ErrInvalidQuery.
// ProfileServices lists the services with a profile overlapping the range,
// sorted, each with its kinds, sorted. Both may be called concurrently.
type ProfileReader interface {
	MergeProfiles(ctx context.Context, q ProfileQuery) (MergedProfile, error)
	ProfileServices(ctx context.Context, start, end time.Time) ([]ProfileService, error)
}

// ProfileService is a service with profiles, and their kinds.
type ProfileService struct {
	Service string   `json:"service"`
	Kinds   []string `json:"kinds"`
}

// ProfileStore is what every profile backend implements.
type ProfileStore interface {
	ProfileWriter
	ProfileReader
	Close() error
}
