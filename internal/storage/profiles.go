package storage

import (
	"context"
	"iter"
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
// range, with the labels its sender gave it and an index of the span ids
// its samples carry (the pprof label "span_id" that otel-profiling-go
// sets), so that the profile of one span is found without reading them all.
type Profile struct {
	Service string
	Kind    string
	// Start and End are the range the profile covers.
	Start, End time.Time
	// Labels are the series labels the sender gave (not the samples'
	// pprof labels), without the service.
	Labels map[string]string
	// SpanIDs are the distinct span ids the samples carry, as sent
	// (16 lower-case hex digits with otel-profiling-go).
	SpanIDs []string
	// Data is the profile in pprof's format, gzipped as pprof writes it.
	Data []byte
}

// ProfileQuery selects profiles. Service and Kind are required.
type ProfileQuery struct {
	Service string
	Kind    string
	// Profiles overlapping [Start, End] match.
	Start, End time.Time
	// Labels must all be present with exactly these values.
	Labels map[string]string
	// SpanID, when set, keeps only profiles whose samples carry it.
	SpanID string
	// Limit is the most profiles returned, newest first; zero or less: no
	// limit.
	Limit int
}

// ProfileWriter stores profiles. WriteProfiles returns nil only once they
// are durable; it may be called concurrently.
type ProfileWriter interface {
	WriteProfiles(ctx context.Context, profiles []Profile) error
}

// ProfileReader reads stored profiles. FindProfiles yields matching
// profiles newest first (by End); no match yields nothing and no error. A
// query without Service or Kind fails with ErrInvalidQuery.
// ProfileServices lists the services with a profile overlapping the range,
// sorted, each with its kinds, sorted. Both may be called concurrently.
type ProfileReader interface {
	FindProfiles(ctx context.Context, q ProfileQuery) iter.Seq2[Profile, error]
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
