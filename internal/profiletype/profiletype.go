// Package profiletype names what vigil's profile APIs ask for: a type such
// as "cpu" or "alloc_space" is one sample type of one kind of stored
// profile (a memory profile carries four), and a kind is recognised from
// the sample types a Go profile carries.
package profiletype

import (
	"fmt"
	"slices"
	"strings"

	"github.com/vigil-observability/vigil/internal/storage"
)

// Type is one sample type of one kind of profile.
type Type struct {
	// Name is the API's name for it (the export's type=).
	Name string
	// Kind is the stored profile kind it is read from.
	Kind string
	// SampleType is the pprof sample type's name in Go's profiles; Alt
	// is another name some senders use for it ("" if none).
	SampleType, Alt string
	// Unit is the sample type's unit in Go's profiles.
	Unit string
}

// SampleTypes are the names t's sample type goes by.
func (t Type) SampleTypes() []string {
	if t.Alt == "" {
		return []string{t.SampleType}
	}
	return []string{t.SampleType, t.Alt}
}

// Types are the types the APIs accept, by name.
var types = []Type{
	{Name: "cpu", Kind: storage.ProfileCPU, SampleType: "cpu", Unit: "nanoseconds"},
	{Name: "alloc_space", Kind: storage.ProfileMemory, SampleType: "alloc_space", Unit: "bytes"},
	{Name: "alloc_objects", Kind: storage.ProfileMemory, SampleType: "alloc_objects", Unit: "count"},
	{Name: "inuse_space", Kind: storage.ProfileMemory, SampleType: "inuse_space", Unit: "bytes"},
	{Name: "inuse_objects", Kind: storage.ProfileMemory, SampleType: "inuse_objects", Unit: "count"},
	{Name: "goroutine", Kind: storage.ProfileGoroutine, SampleType: "goroutine", Alt: "goroutines", Unit: "count"},
	{Name: "mutex", Kind: storage.ProfileMutex, SampleType: "delay", Unit: "nanoseconds"},
	{Name: "mutex_count", Kind: storage.ProfileMutex, SampleType: "contentions", Unit: "count"},
	{Name: "block", Kind: storage.ProfileBlock, SampleType: "delay", Unit: "nanoseconds"},
	{Name: "block_count", Kind: storage.ProfileBlock, SampleType: "contentions", Unit: "count"},
}

// Names lists the accepted type names, for error messages.
func Names() []string {
	out := make([]string, len(types))
	for i, t := range types {
		out[i] = t.Name
	}
	return out
}

// Lookup returns the type named name.
func Lookup(name string) (Type, error) {
	for _, t := range types {
		if t.Name == name {
			return t, nil
		}
	}
	return Type{}, fmt.Errorf("unknown profile type %q; one of %s", name, strings.Join(Names(), ", "))
}

// Index returns the index of t's sample type among sampleTypes, or -1.
func (t Type) Index(sampleTypes []string) int {
	for i, s := range sampleTypes {
		if s == t.SampleType || (t.Alt != "" && s == t.Alt) {
			return i
		}
	}
	return -1
}

// nameSuffixes are the kinds Pyroscope clients' application names end in
// (app.cpu, app.alloc_space, ...), and shorter ones for plain uploads.
var nameSuffixes = map[string]string{
	"cpu": storage.ProfileCPU, "itimer": storage.ProfileCPU,
	"alloc_objects": storage.ProfileMemory, "alloc_space": storage.ProfileMemory,
	"inuse_objects": storage.ProfileMemory, "inuse_space": storage.ProfileMemory,
	"memory": storage.ProfileMemory, "heap": storage.ProfileMemory,
	"goroutines": storage.ProfileGoroutine, "goroutine": storage.ProfileGoroutine,
	"mutex_count": storage.ProfileMutex, "mutex_duration": storage.ProfileMutex, "mutex": storage.ProfileMutex,
	"block_count": storage.ProfileBlock, "block_duration": storage.ProfileBlock, "block": storage.ProfileBlock,
}

// KindSuffix splits a kind suffix off an application name: "app.cpu" is
// ("app", "cpu"); a name without one is returned whole with kind "".
func KindSuffix(name string) (base, kind string) {
	i := strings.LastIndexByte(name, '.')
	if i <= 0 {
		return name, ""
	}
	if k, ok := nameSuffixes[name[i+1:]]; ok {
		return name[:i], k
	}
	return name, ""
}

// KindOfDisplayName is the kind a Pyroscope sample_type_config display
// name says (mutex_count, block_duration, ...), or "".
func KindOfDisplayName(display string) string {
	switch {
	case strings.HasPrefix(display, "mutex_"):
		return storage.ProfileMutex
	case strings.HasPrefix(display, "block_"):
		return storage.ProfileBlock
	case display == "goroutine":
		return storage.ProfileGoroutine
	}
	return ""
}

// Check says whether a profile with these sample types can be stored as
// kind: it must carry at least one of the kind's types. kind "" asks for
// the kind the sample types show; contention profiles (mutex and block
// look alike) need it said.
func Check(kind string, sampleTypes []string) (string, error) {
	if kind == "" {
		switch {
		case slices.Contains(sampleTypes, "cpu"):
			kind = storage.ProfileCPU
		case slices.ContainsFunc(sampleTypes, func(s string) bool {
			return s == "alloc_space" || s == "inuse_space" || s == "alloc_objects" || s == "inuse_objects"
		}):
			kind = storage.ProfileMemory
		case slices.Contains(sampleTypes, "goroutine") || slices.Contains(sampleTypes, "goroutines"):
			kind = storage.ProfileGoroutine
		case slices.Contains(sampleTypes, "delay") || slices.Contains(sampleTypes, "contentions"):
			return "", fmt.Errorf("a contention profile (sample types %v) must say whether it is of mutexes or blocking: name it app.mutex or app.block", sampleTypes)
		default:
			return "", fmt.Errorf("sample types %v are not those of a Go cpu, memory, goroutine, mutex or block profile", sampleTypes)
		}
	}
	for _, t := range types {
		if t.Kind == kind && t.Index(sampleTypes) >= 0 {
			return kind, nil
		}
	}
	return "", fmt.Errorf("sample types %v are not those of a %s profile", sampleTypes, kind)
}
