package selfobs

import (
	"slices"
	"sync"
	"time"
)

// MaxRejectionSources is how many sources RejectionSources keeps per signal
// and reason; the least recently seen one is forgotten first.
const MaxRejectionSources = 8

// maxSourceLen bounds a source's text: it comes from what clients send.
const maxSourceLen = 200

// RejectionSources remembers who sent the data vigil rejected, which
// vigil_rejected_total cannot say without a label per client: per signal
// and reason, the few sources (a service.name, a client address) seen most
// recently, with how many items each lost. Its memory is bounded: reasons
// are a fixed set, and each keeps at most MaxRejectionSources sources. It is
// safe for concurrent use.
type RejectionSources struct {
	now func() time.Time
	mu  sync.Mutex
	m   map[rejectionKey][]RejectionSource
}

type rejectionKey struct{ signal, reason string }

// RejectionSource is one source of rejected items.
type RejectionSource struct {
	Source string
	// Items counts the items rejected from this source since First.
	Items       int64
	First, Last time.Time
}

// NewRejectionSources returns an empty record; now is time.Now if nil.
func NewRejectionSources(now func() time.Time) *RejectionSources {
	if now == nil {
		now = time.Now
	}
	return &RejectionSources{now: now, m: map[rejectionKey][]RejectionSource{}}
}

// Record notes that n items of signal from source were rejected for
// reason. An empty source is not recorded.
func (r *RejectionSources) Record(signal, reason, source string, n int) {
	if r == nil || source == "" || n <= 0 {
		return
	}
	if len(source) > maxSourceLen {
		source = source[:maxSourceLen]
	}
	now := r.now()
	k := rejectionKey{signal, reason}
	r.mu.Lock()
	defer r.mu.Unlock()
	srcs := r.m[k]
	i := slices.IndexFunc(srcs, func(s RejectionSource) bool { return s.Source == source })
	if i < 0 {
		if len(srcs) == MaxRejectionSources {
			oldest := 0
			for j, s := range srcs {
				if s.Last.Before(srcs[oldest].Last) {
					oldest = j
				}
			}
			srcs = slices.Delete(srcs, oldest, oldest+1)
		}
		srcs = append(srcs, RejectionSource{Source: source, First: now})
		i = len(srcs) - 1
	}
	srcs[i].Items += int64(n)
	srcs[i].Last = now
	r.m[k] = srcs
}

// Recent returns the sources of items of signal rejected for reason, the
// most recently seen first.
func (r *RejectionSources) Recent(signal, reason string) []RejectionSource {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	out := slices.Clone(r.m[rejectionKey{signal, reason}])
	r.mu.Unlock()
	slices.SortStableFunc(out, func(a, b RejectionSource) int { return b.Last.Compare(a.Last) })
	return out
}

// RejectFrom is Reject that also records who sent the items in Sources,
// when source is not empty. Like Reject it is safe on a nil receiver.
func (m *IngestMetrics) RejectFrom(signal, reason, source string, n int) {
	if m == nil || n == 0 {
		return
	}
	m.Reject(signal, reason, n)
	m.Sources.Record(signal, reason, source, n)
}
