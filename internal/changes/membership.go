package changes

import (
	"net"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-observability/vigil/internal/configcentre"
	"github.com/vigil-observability/vigil/internal/registry"
)

// KindRegistry is the Change.Kind of a registry join or leave; its Action
// is ActionJoin or ActionLeave.
const (
	KindRegistry = "registry"
	ActionJoin   = "join"
	ActionLeave  = "leave"
)

// DefaultMaxMembership bounds the joins and leaves a Membership keeps.
const DefaultMaxMembership = 10_000

// Membership keeps the service registry's joins and leaves as change
// events, in memory (as the registry itself is), the newest
// MaxMembership of them: past that the oldest is dropped and counted
// (vigil_changes_dropped_total{kind="registry"}). It is safe for
// concurrent use.
type Membership struct {
	max     int
	dropped prometheus.Counter

	mu   sync.Mutex
	ring []configcentre.Change // oldest first from start
	head int                   // index of the oldest once full
}

// NewMembership returns an empty Membership keeping at most max events
// (0 is DefaultMaxMembership); reg, when not nil, receives the drop
// counter.
func NewMembership(max int, reg prometheus.Registerer) *Membership {
	if max <= 0 {
		max = DefaultMaxMembership
	}
	m := &Membership{max: max, dropped: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "vigil_changes_dropped_total", Help: "Change events dropped from memory past their bound, by kind.",
		ConstLabels: prometheus.Labels{"kind": KindRegistry},
	})}
	if reg != nil {
		reg.MustRegister(m.dropped)
	}
	return m
}

// Record is registry.Options.OnMembership: it keeps a join or a leave.
func (m *Membership) Record(ev registry.Membership) {
	in := ev.Instance
	ch := configcentre.Change{Time: ev.Time.UTC(), Kind: KindRegistry, Action: ActionLeave,
		Service: in.Service, Instance: in.ID, Author: "vigil-registry", Message: ev.Reason}
	if ev.Join {
		ch.Action, ch.To = ActionJoin, in.Version()
		if in.Port > 0 {
			ch.Message = net.JoinHostPort(in.Address, strconv.Itoa(in.Port))
		} else {
			ch.Message = in.Address
		}
	} else {
		ch.From = in.Version()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.ring) < m.max {
		m.ring = append(m.ring, ch)
		return
	}
	m.ring[m.head] = ch
	m.head = (m.head + 1) % m.max
	m.dropped.Inc()
}

// Changes returns the events with start <= Time <= end, oldest first.
func (m *Membership) Changes(start, end time.Time) []configcentre.Change {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []configcentre.Change
	for i := range m.ring {
		ch := m.ring[(m.head+i)%len(m.ring)]
		if !ch.Time.Before(start) && !ch.Time.After(end) {
			out = append(out, ch)
		}
	}
	// Events arrive in order, but a clock stepping back could unsort them.
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out
}
