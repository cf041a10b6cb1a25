// Package registry is vigil's service registry (issue 20, item 3): the
// instances services register, each with its checks (a TTL the instance
// refreshes, or an HTTP URL vigil probes), and their health.
//
// The state is in memory on each node: heartbeats come every few seconds
// from every instance, too often to put on the consensus log, and an
// instance registers again after vigil restarts, as it does with a Consul
// agent. Registry is deterministic: every change takes its time from the
// Options' Now, and expiry happens in Expire, which the caller (Run, or a
// test) calls with the time it chooses.
package registry

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Status is a check's or an instance's health, named as Consul names it.
type Status string

// The statuses, best first.
const (
	Passing  Status = "passing"
	Warning  Status = "warning"
	Critical Status = "critical"
)

// rank orders statuses from best to worst.
func (s Status) rank() int {
	switch s {
	case Passing:
		return 0
	case Warning:
		return 1
	}
	return 2
}

// Valid reports whether s is one of the three statuses.
func (s Status) Valid() bool { return s == Passing || s == Warning || s == Critical }

// Sentinel errors; the HTTP API maps them to statuses.
var (
	// ErrNotFound: no instance or check has the id.
	ErrNotFound = errors.New("not found")
	// ErrInvalid: a registration or update that cannot be accepted.
	ErrInvalid = errors.New("invalid")
)

// CheckType is how a check learns its status.
type CheckType string

// The check types.
const (
	// TTL checks are set by the instance (pass, warn, fail) and turn
	// critical when not set again within their TTL.
	TTL CheckType = "ttl"
	// HTTP checks are probed by vigil: a 2xx is passing, 429 warning,
	// anything else (or no answer within the timeout) critical.
	HTTP CheckType = "http"
)

// CheckSpec is a check as registered.
type CheckSpec struct {
	// ID defaults to "service:<instance id>" (with ":<n>" for the n-th of
	// several, from 1), as Consul names a service's checks.
	ID   string
	Name string
	Type CheckType
	// TTL for a TTL check.
	TTL time.Duration
	// URL, Method, Interval and Timeout for an HTTP check.
	URL      string
	Method   string
	Interval time.Duration
	Timeout  time.Duration
	// Status is the initial status; empty is critical, as in Consul.
	Status Status
	// DeregisterAfter removes the instance once this check has been
	// critical that long; 0 takes Options.DeregisterAfter.
	DeregisterAfter time.Duration
}

// Instance is a registration: one instance of a service.
type Instance struct {
	ID      string
	Service string
	Address string
	Port    int
	Tags    []string
	Meta    map[string]string
	Checks  []CheckSpec
}

// Version is the instance's version, from its metadata ("version").
func (in Instance) Version() string { return in.Meta["version"] }

// Check is a check's state.
type Check struct {
	CheckSpec
	Status Status
	Output string
	// Updated is when the status was last set (a heartbeat, a probe).
	Updated time.Time
	// CriticalSince is when the check last turned critical; zero while
	// it is not.
	CriticalSince time.Time
	// NextProbe is when an HTTP check is probed next.
	NextProbe time.Time
}

// Entry is an instance with its checks' state, as reads return it.
type Entry struct {
	Instance
	Checks []Check
	// Health is the worst of its checks' statuses; passing without checks.
	Health      Status
	CreateIndex uint64
	ModifyIndex uint64
}

// Options configure a Registry.
type Options struct {
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// DeregisterAfter is how long an instance's check may stay critical
	// before the instance is removed, when the check names no
	// DeregisterCriticalServiceAfter of its own; 0 is DefaultDeregisterAfter.
	DeregisterAfter time.Duration
	// MaxInstances bounds the registry; 0 is DefaultMaxInstances.
	MaxInstances int
	// OnMembership, when set, is told of every join (an id registered
	// that was not) and leave (a deregistration, or a removal after a
	// critical check's deregister-after period), with the time and the
	// instance. It is called with the registry locked, in order: it must
	// be quick and must not call the registry.
	OnMembership func(Membership)
}

// Membership is a join or a leave.
type Membership struct {
	Time time.Time
	// Join is true for a join, false for a leave.
	Join     bool
	Instance Instance
	// Reason is why an instance left: "deregistered", or the removal's
	// cause.
	Reason string
}

// Defaults of Options.
const (
	DefaultDeregisterAfter = time.Minute
	DefaultMaxInstances    = 10000
	// MinProbeInterval bounds how often an HTTP check is probed.
	MinProbeInterval = time.Second
	// DefaultProbeTimeout is an HTTP check's timeout when it names none.
	DefaultProbeTimeout = 5 * time.Second
)

// Registry holds the instances. It is safe for concurrent use.
type Registry struct {
	now             func() time.Time
	onMembership    func(Membership)
	deregisterAfter time.Duration
	maxInstances    int

	mu        sync.Mutex
	instances map[string]*entry
	index     uint64
	changed   chan struct{} // closed and replaced at every change
}

type entry struct {
	inst        Instance
	checks      []*Check
	createIndex uint64
	modifyIndex uint64
}

// New returns an empty registry.
func New(opts Options) *Registry {
	r := &Registry{now: opts.Now, onMembership: opts.OnMembership, deregisterAfter: opts.DeregisterAfter, maxInstances: opts.MaxInstances,
		instances: map[string]*entry{}, index: 1, changed: make(chan struct{})}
	if r.now == nil {
		r.now = time.Now
	}
	if r.deregisterAfter <= 0 {
		r.deregisterAfter = DefaultDeregisterAfter
	}
	if r.maxInstances <= 0 {
		r.maxInstances = DefaultMaxInstances
	}
	return r
}

// bumpLocked records a change: the index grows and watchers wake.
func (r *Registry) bumpLocked() uint64 {
	r.index++
	close(r.changed)
	r.changed = make(chan struct{})
	return r.index
}

// Watch returns the current index and a channel closed at the next change.
func (r *Registry) Watch() (uint64, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.index, r.changed
}

// Register adds or replaces an instance (by its ID). Replacing keeps the
// status of checks whose ID and type are unchanged, as Consul's agent does
// when a service registers again.
func (r *Registry) Register(in Instance) error {
	if in.Service == "" {
		return fmt.Errorf("%w: the service has no name", ErrInvalid)
	}
	if in.ID == "" {
		in.ID = in.Service
	}
	if in.Port < 0 || in.Port > 65535 {
		return fmt.Errorf("%w: port %d out of range", ErrInvalid, in.Port)
	}
	if err := checkSizes(in); err != nil {
		return err
	}
	in.Tags = slices.Clone(in.Tags)
	in.Meta = maps.Clone(in.Meta)
	in.Checks = slices.Clone(in.Checks)
	now := r.now()
	checks := make([]*Check, 0, len(in.Checks))
	for i := range in.Checks {
		c := &in.Checks[i]
		if c.ID == "" {
			c.ID = "service:" + in.ID
			if len(in.Checks) > 1 {
				c.ID = fmt.Sprintf("service:%s:%d", in.ID, i+1)
			}
		}
		if c.Name == "" {
			c.Name = "Service '" + in.Service + "' check"
		}
		switch c.Type {
		case TTL:
			if c.TTL <= 0 {
				return fmt.Errorf("%w: check %s: a TTL check needs a TTL", ErrInvalid, c.ID)
			}
		case HTTP:
			if c.URL == "" || !(strings.HasPrefix(c.URL, "http://") || strings.HasPrefix(c.URL, "https://")) {
				return fmt.Errorf("%w: check %s: an HTTP check needs an http(s) URL", ErrInvalid, c.ID)
			}
			c.Interval = max(c.Interval, MinProbeInterval)
			if c.Timeout <= 0 {
				c.Timeout = min(DefaultProbeTimeout, c.Interval)
			}
			if c.Method == "" {
				c.Method = "GET"
			}
		default:
			return fmt.Errorf("%w: check %s: needs a TTL or an HTTP URL", ErrInvalid, c.ID)
		}
		if c.Status == "" {
			c.Status = Critical
		}
		if !c.Status.Valid() {
			return fmt.Errorf("%w: check %s: status %q", ErrInvalid, c.ID, c.Status)
		}
		st := &Check{CheckSpec: *c, Status: c.Status, Updated: now}
		if c.Type == HTTP {
			st.NextProbe = now
		}
		checks = append(checks, st)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.instances[in.ID]
	if old == nil && len(r.instances) >= r.maxInstances {
		return fmt.Errorf("%w: the registry holds its limit of %d instances", ErrInvalid, r.maxInstances)
	}
	e := &entry{inst: in, checks: checks}
	if old != nil {
		e.createIndex = old.createIndex
		for _, c := range checks {
			for _, o := range old.checks {
				if o.ID == c.ID && o.Type == c.Type {
					c.Status, c.Output, c.Updated, c.NextProbe = o.Status, o.Output, o.Updated, o.NextProbe
				}
			}
		}
	}
	for _, c := range checks {
		if c.Status == Critical {
			c.CriticalSince = now
			if old != nil {
				if o := old.check(c.ID); o != nil && o.Status == Critical {
					c.CriticalSince = o.CriticalSince
				}
			}
		}
	}
	idx := r.bumpLocked()
	if old == nil {
		e.createIndex = idx
	}
	e.modifyIndex = idx
	r.instances[in.ID] = e
	if old == nil && r.onMembership != nil {
		r.onMembership(Membership{Time: now, Join: true, Instance: in})
	}
	return nil
}

// Bounds of a registration, Consul's where it has them (metadata), so that
// the registry's memory is bounded by MaxInstances.
const (
	MaxMetaPairs    = 64
	MaxMetaKeyLen   = 128
	MaxMetaValueLen = 512
	MaxTags         = 64
	MaxChecks       = 16
	// MaxStringLen bounds every other string: ids, names, addresses,
	// tags, URLs.
	MaxStringLen = 512
)

func checkSizes(in Instance) error {
	switch {
	case len(in.Meta) > MaxMetaPairs:
		return fmt.Errorf("%w: %d metadata pairs, at most %d", ErrInvalid, len(in.Meta), MaxMetaPairs)
	case len(in.Tags) > MaxTags:
		return fmt.Errorf("%w: %d tags, at most %d", ErrInvalid, len(in.Tags), MaxTags)
	case len(in.Checks) > MaxChecks:
		return fmt.Errorf("%w: %d checks, at most %d", ErrInvalid, len(in.Checks), MaxChecks)
	}
	for k, v := range in.Meta {
		if len(k) > MaxMetaKeyLen || len(v) > MaxMetaValueLen {
			return fmt.Errorf("%w: metadata key %.40q: keys are at most %d bytes, values %d", ErrInvalid, k, MaxMetaKeyLen, MaxMetaValueLen)
		}
	}
	strs := append([]string{in.ID, in.Service, in.Address}, in.Tags...)
	for _, c := range in.Checks {
		strs = append(strs, c.ID, c.Name, c.URL, c.Method)
	}
	for _, s := range strs {
		if len(s) > MaxStringLen {
			return fmt.Errorf("%w: %.40q... is longer than %d bytes", ErrInvalid, s, MaxStringLen)
		}
	}
	return nil
}

func (e *entry) check(id string) *Check {
	for _, c := range e.checks {
		if c.ID == id {
			return c
		}
	}
	return nil
}

// Deregister removes an instance.
func (r *Registry) Deregister(id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.instances[id]
	if !ok {
		return fmt.Errorf("%w: no instance %q", ErrNotFound, id)
	}
	delete(r.instances, id)
	r.bumpLocked()
	if r.onMembership != nil {
		r.onMembership(Membership{Time: r.now(), Instance: e.inst, Reason: "deregistered"})
	}
	return nil
}

// UpdateCheck sets a check's status (a TTL heartbeat, or a probe's
// result), which also restarts a TTL check's TTL. Only a change of status
// or output wakes watchers, so a steady heartbeat costs them nothing.
func (r *Registry) UpdateCheck(checkID string, status Status, output string) error {
	if !status.Valid() {
		return fmt.Errorf("%w: status %q", ErrInvalid, status)
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.instances {
		if c := e.check(checkID); c != nil {
			c.Updated = now
			if c.Status == status && c.Output == output {
				return nil
			}
			if status == Critical && c.Status != Critical {
				c.CriticalSince = now
			}
			if status != Critical {
				c.CriticalSince = time.Time{}
			}
			c.Status, c.Output = status, output
			e.modifyIndex = r.bumpLocked()
			return nil
		}
	}
	return fmt.Errorf("%w: no check %q", ErrNotFound, checkID)
}

// Expire turns critical the TTL checks not refreshed within their TTL by
// now, and removes the instances one of whose checks has been critical for
// its deregister-after period. It returns the ids removed.
func (r *Registry) Expire(now time.Time) (removed []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	changed := false
	var gone []Membership
	for id, e := range r.instances {
		for _, c := range e.checks {
			if c.Type == TTL && c.Status != Critical && !now.Before(c.Updated.Add(c.TTL)) {
				c.Status, c.Output, c.CriticalSince = Critical, "TTL expired", c.Updated.Add(c.TTL)
				e.modifyIndex, changed = r.index+1, true
			}
		}
		for _, c := range e.checks {
			after := c.DeregisterAfter
			if after <= 0 {
				after = r.deregisterAfter
			}
			if c.Status == Critical && !c.CriticalSince.IsZero() && !now.Before(c.CriticalSince.Add(after)) {
				delete(r.instances, id)
				removed = append(removed, id)
				changed = true
				if r.onMembership != nil {
					gone = append(gone, Membership{Time: now, Instance: e.inst,
						Reason: fmt.Sprintf("removed: check %s critical for %s (%s)", c.ID, after, c.Output)})
				}
				break
			}
		}
	}
	if changed {
		r.bumpLocked()
	}
	sort.Strings(removed)
	sort.Slice(gone, func(i, j int) bool { return gone[i].Instance.ID < gone[j].Instance.ID })
	for _, m := range gone {
		r.onMembership(m)
	}
	return removed
}

// DueProbes returns the HTTP checks due at now and moves each one's next
// probe an interval on, so a slow probe is not started twice.
func (r *Registry) DueProbes(now time.Time) []CheckSpec {
	r.mu.Lock()
	defer r.mu.Unlock()
	var due []CheckSpec
	for _, e := range r.instances {
		for _, c := range e.checks {
			if c.Type == HTTP && !now.Before(c.NextProbe) {
				c.NextProbe = now.Add(c.Interval)
				due = append(due, c.CheckSpec)
			}
		}
	}
	sort.Slice(due, func(i, j int) bool { return due[i].ID < due[j].ID })
	return due
}

// Entries returns the instances, by service and then id; service "" is
// every service.
func (r *Registry) Entries(service string) ([]Entry, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []Entry{}
	for _, e := range r.instances {
		if service != "" && e.inst.Service != service {
			continue
		}
		ent := Entry{Instance: e.inst, Health: Passing, CreateIndex: e.createIndex, ModifyIndex: e.modifyIndex}
		ent.Tags, ent.Meta = slices.Clone(e.inst.Tags), maps.Clone(e.inst.Meta)
		for _, c := range e.checks {
			ent.Checks = append(ent.Checks, *c)
			if c.Status.rank() > ent.Health.rank() {
				ent.Health = c.Status
			}
		}
		out = append(out, ent)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Service != out[j].Service {
			return out[i].Service < out[j].Service
		}
		return out[i].ID < out[j].ID
	})
	return out, r.index
}

// Services returns each service's name with the union of its instances'
// tags, sorted.
func (r *Registry) Services() (map[string][]string, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]string{}
	for _, e := range r.instances {
		tags := out[e.inst.Service]
		if tags == nil {
			tags = []string{}
		}
		for _, t := range e.inst.Tags {
			if !slices.Contains(tags, t) {
				tags = append(tags, t)
			}
		}
		slices.Sort(tags)
		out[e.inst.Service] = tags
	}
	return out, r.index
}
