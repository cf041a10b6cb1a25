package ingest

import "fmt"

// DefaultMaxRequestsInFlight is how many requests a receiver serves at once
// unless configured otherwise (ingest.max_requests_in_flight). The decode
// budget, not this count, bounds what requests' bodies cost; the count
// bounds the rest (a goroutine and buffers each). At 16, 32 senders were
// refused during a 250 ms checkpoint with the CPU three quarters busy (2.5%
// of the spans of a 50,000 spans/s load); at 64, none at 60,000.
const DefaultMaxRequestsInFlight = 64

// Why Admission refused a request; both wrap ErrOverloaded, so the client
// is told to retry.
var (
	ErrNearMemoryLimit = fmt.Errorf("%w: near the memory limit", ErrOverloaded)
	ErrTooManyInFlight = fmt.Errorf("%w: too many requests in flight", ErrOverloaded)
)

// MemoryPressure says when to refuse new requests to stay under the memory
// cap; *memlimit.Guard satisfies it. Pressure may be called concurrently.
type MemoryPressure interface {
	Pressure() bool
}

// AdmissionOptions configures NewAdmission.
type AdmissionOptions struct {
	// MaxInFlight is how many requests may be served at once;
	// DefaultMaxRequestsInFlight if 0 or less.
	MaxInFlight int
	// Memory refuses every request while the process is near its memory
	// cap; nil never refuses.
	Memory MemoryPressure
}

// Admission bounds the requests a receiver serves at once. A request past
// the bound is refused at once, before its body is read: the point is the
// memory requests hold, and waiting would let slow senders pile up. It may
// be used from several goroutines at once.
type Admission struct {
	slots  chan struct{}
	memory MemoryPressure
}

// NewAdmission returns an Admission with every slot free.
func NewAdmission(opts AdmissionOptions) *Admission {
	n := opts.MaxInFlight
	if n <= 0 {
		n = DefaultMaxRequestsInFlight
	}
	return &Admission{slots: make(chan struct{}, n), memory: opts.Memory}
}

// Admit takes a slot without waiting; the caller calls release once the
// request is done. When none is free, or memory is short, it returns
// ErrTooManyInFlight or ErrNearMemoryLimit and no release.
func (a *Admission) Admit() (release func(), err error) {
	if a.memory != nil && a.memory.Pressure() {
		return nil, ErrNearMemoryLimit
	}
	select {
	case a.slots <- struct{}{}:
		return a.release, nil
	default:
		return nil, ErrTooManyInFlight
	}
}

func (a *Admission) release() { <-a.slots }
