package limits

import (
	"cmp"
	"hash/maphash"
	"iter"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ReasonStreamLimit is counted for log lines refused because their stream
// would be new while its tenant or service already has as many active
// streams as limits.max_streams_per_tenant or limits.max_streams_per_service.
const ReasonStreamLimit = "stream_limit"

// StreamLimits bounds the active log streams (distinct label sets of the
// Loki push API seen within Window) per tenant and per service. A zero
// field takes the default beside it; a negative limit turns it off.
type StreamLimits struct {
	// MaxPerTenant bounds a tenant's active streams (default 10,000).
	MaxPerTenant int
	// MaxPerService bounds one service's active streams within a tenant
	// (default 5,000), so that one service putting an id in a label cannot
	// take the whole tenant's allowance from the others.
	MaxPerService int
	// Window is how long a stream stays active after its last line
	// (default 1h).
	Window time.Duration
}

// maxTotal bounds the streams of all tenants together, since the tenant
// is whatever X-Scope-OrgID an ingest client sends: ten tenants at their
// limit, or a million streams with the per-tenant limit off.
func (l StreamLimits) maxTotal() int {
	if l.MaxPerTenant <= 0 {
		return 1_000_000
	}
	return 10 * l.MaxPerTenant
}

// Defaults of StreamLimits.
const (
	DefaultMaxStreamsPerTenant  = 10_000
	DefaultMaxStreamsPerService = 5_000
	DefaultStreamWindow         = time.Hour
)

// WithDefaults returns l with every zero field set to its default.
func (l StreamLimits) WithDefaults() StreamLimits {
	if l.MaxPerTenant == 0 {
		l.MaxPerTenant = DefaultMaxStreamsPerTenant
	}
	if l.MaxPerService == 0 {
		l.MaxPerService = DefaultMaxStreamsPerService
	}
	if l.Window <= 0 {
		l.Window = DefaultStreamWindow
	}
	return l
}

// Bounds of what the tracker keeps beside the streams themselves, for the
// doctor's examples.
const (
	maxExamplesPerLabel = 5
	maxExampleLen       = 64
	maxExampleLabels    = 256 // label names with examples, per tenant
)

// StreamTracker keeps the active streams of every tenant and refuses new
// streams past the limits. It holds, per active stream, its last-seen time,
// its service and a hash per label value (not the values), so its memory is
// bounded by the limits: at most MaxPerTenant streams per tenant and ten
// times that in all, each of at most the labels a stream may carry.
// Streams unseen for Window are pruned as lines arrive. It is safe for
// concurrent use.
type StreamTracker struct {
	limits StreamLimits
	seed   maphash.Seed

	mu        sync.Mutex
	tenants   map[string]*tenantStreams
	total     int // active streams of every tenant
	lastPrune time.Time
}

type tenantStreams struct {
	streams  map[uint64]*activeStream
	services map[string]int
	// examples holds a few values of each label name, taken from new
	// streams, so that a finding can show what a label carries.
	examples map[string][]string
	names    map[string]string // the keys of examples, to share them
}

type activeStream struct {
	lastSeen time.Time
	service  string
	labels   []labelRef
}

// labelRef is one label of a stream: its name (shared with the other
// streams through the examples map when possible) and its value's hash.
type labelRef struct {
	name  string
	value uint64
}

// NewStreamTracker returns a tracker enforcing l.
func NewStreamTracker(l StreamLimits) *StreamTracker {
	return &StreamTracker{limits: l.WithDefaults(), seed: maphash.MakeSeed(), tenants: map[string]*tenantStreams{}}
}

// Limits returns the limits the tracker enforces, defaults filled in.
func (t *StreamTracker) Limits() StreamLimits { return t.limits }

// Admit records that a stream of tenant and service, with the given labels
// (name, value pairs in a stable order, as a parsed label set is sorted;
// read twice for a new stream),
// received lines at now. It returns "" when the stream may be written, or
// ReasonStreamLimit with a description of the limit reached when the
// stream is new and its tenant or service is full. An existing stream is
// always admitted, so that a flood of new streams cannot starve those
// being written already.
func (t *StreamTracker) Admit(tenant, service string, labels iter.Seq2[string, string], now time.Time) (reason, detail string) {
	var h maphash.Hash
	h.SetSeed(t.seed)
	n := 0
	for name, value := range labels {
		h.WriteString(name)
		h.WriteByte(0xff)
		h.WriteString(value)
		h.WriteByte(0xff)
		n++
	}
	key := h.Sum64()

	t.mu.Lock()
	defer t.mu.Unlock()
	t.pruneLocked(now)
	ts := t.tenants[tenant]
	if ts != nil {
		if s, ok := ts.streams[key]; ok {
			s.lastSeen = now
			return "", ""
		}
	}
	switch {
	case ts != nil && t.limits.MaxPerTenant > 0 && len(ts.streams) >= t.limits.MaxPerTenant:
		return ReasonStreamLimit, "tenant " + tenant + " has " + strconv.Itoa(len(ts.streams)) + " active streams, the limit (limits.max_streams_per_tenant)"
	case ts != nil && t.limits.MaxPerService > 0 && ts.services[service] >= t.limits.MaxPerService:
		return ReasonStreamLimit, "service " + service + " has " + strconv.Itoa(ts.services[service]) + " active streams, the limit (limits.max_streams_per_service)"
	case t.total >= t.limits.maxTotal():
		return ReasonStreamLimit, "vigil tracks " + strconv.Itoa(t.total) + " active streams across all tenants, the most it holds (10 tenants' limits.max_streams_per_tenant)"
	}
	if ts == nil {
		ts = &tenantStreams{streams: map[uint64]*activeStream{}, services: map[string]int{}, examples: map[string][]string{}, names: map[string]string{}}
		t.tenants[strings.Clone(tenant)] = ts
	}
	// Only a new stream's labels are read again, for what is kept of them.
	refs := make([]labelRef, 0, n)
	for name, value := range labels {
		refs = append(refs, labelRef{name: ts.example(name, value), value: maphash.String(t.seed, value)})
	}
	service = strings.Clone(service) // not a reference into the request body
	ts.streams[key] = &activeStream{lastSeen: now, service: service, labels: refs}
	ts.services[service]++
	t.total++
	return "", ""
}

// example keeps value among name's examples and returns the name as the
// tenant holds it: the streams share one copy of each name, and none keeps
// a reference into the request body the name was decoded from.
func (ts *tenantStreams) example(name, value string) string {
	ex, ok := ts.examples[name]
	if !ok {
		if len(ts.examples) >= maxExampleLabels {
			return strings.Clone(name)
		}
		name = strings.Clone(name)
	} else {
		name = ts.names[name]
	}
	if len(value) > maxExampleLen {
		value = strings.ToValidUTF8(value[:maxExampleLen], "") + "..."
	}
	if !slices.Contains(ex, value) {
		if len(ex) >= maxExamplesPerLabel {
			ex = slices.Delete(ex, 0, 1) // the newest values say most about what the label carries now
		}
		ex = append(ex, strings.Clone(value))
	}
	ts.examples[name] = ex
	ts.names[name] = name
	return name
}

// pruneLocked forgets the streams unseen for the window. It scans every
// stream, so it runs at most every eighth of the window.
func (t *StreamTracker) pruneLocked(now time.Time) {
	if now.Sub(t.lastPrune) < t.limits.Window/8 {
		return
	}
	t.lastPrune = now
	cutoff := now.Add(-t.limits.Window)
	for tenant, ts := range t.tenants {
		for key, s := range ts.streams {
			if s.lastSeen.Before(cutoff) {
				delete(ts.streams, key)
				t.total--
				if ts.services[s.service]--; ts.services[s.service] <= 0 {
					delete(ts.services, s.service)
				}
			}
		}
		if len(ts.streams) == 0 {
			delete(t.tenants, tenant)
		}
	}
}

// StreamUsage is what one service of one tenant holds of the stream
// limits, with the labels whose values multiply its streams.
type StreamUsage struct {
	Tenant, Service string
	// Streams counts the service's active streams; ServiceLimit is
	// limits.max_streams_per_service (0: none).
	Streams, ServiceLimit int
	// TenantStreams counts the tenant's; TenantLimit is
	// limits.max_streams_per_tenant (0: none).
	TenantStreams, TenantLimit int
	// Labels are the service's labels with the most distinct values among
	// its active streams, most first (at most 3).
	Labels []LabelUsage
}

// LabelUsage tells how many distinct values a label takes among a
// service's active streams, with a few recent examples of its values: those
// of the tenant's newest streams, which may be of another service.
type LabelUsage struct {
	Name     string
	Values   int
	Examples []string
}

// Usage reports the active streams per tenant and service, ordered by
// tenant then service. It walks every active stream.
func (t *StreamTracker) Usage(now time.Time) []StreamUsage {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lastPrune = time.Time{} // a report counts only the streams active now
	t.pruneLocked(now)
	limit := func(n int) int { return max(n, 0) }
	var out []StreamUsage
	for tenant, ts := range t.tenants {
		values := map[string]map[string]map[uint64]struct{}{} // service → label → value hashes
		for _, s := range ts.streams {
			byLabel := values[s.service]
			if byLabel == nil {
				byLabel = map[string]map[uint64]struct{}{}
				values[s.service] = byLabel
			}
			for _, l := range s.labels {
				set := byLabel[l.name]
				if set == nil {
					set = map[uint64]struct{}{}
					byLabel[l.name] = set
				}
				set[l.value] = struct{}{}
			}
		}
		for service, byLabel := range values {
			u := StreamUsage{
				Tenant: tenant, Service: service,
				Streams: ts.services[service], ServiceLimit: limit(t.limits.MaxPerService),
				TenantStreams: len(ts.streams), TenantLimit: limit(t.limits.MaxPerTenant),
			}
			for name, set := range byLabel {
				u.Labels = append(u.Labels, LabelUsage{Name: name, Values: len(set), Examples: slices.Clone(ts.examples[name])})
			}
			slices.SortFunc(u.Labels, func(a, b LabelUsage) int {
				if c := cmp.Compare(b.Values, a.Values); c != 0 {
					return c
				}
				return strings.Compare(a.Name, b.Name)
			})
			u.Labels = u.Labels[:min(len(u.Labels), 3)]
			out = append(out, u)
		}
	}
	slices.SortFunc(out, func(a, b StreamUsage) int {
		return cmp.Or(strings.Compare(a.Tenant, b.Tenant), strings.Compare(a.Service, b.Service))
	})
	return out
}
