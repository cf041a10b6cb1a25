// Package memlimit keeps vigil under a configured memory cap. It gives the Go
// runtime its share of the cap as a soft limit (so the collector works harder
// before the cap is reached) and tells the ingest receivers to refuse new
// requests with a retryable error while live heap stays high, so overload
// turns into back-pressure on the senders instead of an out-of-memory kill.
package memlimit

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options configures a Guard.
type Options struct {
	// Limit is the memory the whole process should stay under, in bytes.
	Limit int64
	// Reserved is the part of Limit that Go does not manage (DuckDB's
	// buffer pool): the Go runtime gets the rest.
	Reserved int64
	// RefuseAt is the fraction of the Go share of live heap above which
	// ingest is refused; zero means DefaultRefuseAt. Ingest resumes below
	// RefuseAt minus 5 points, so the switch does not flap.
	RefuseAt float64
	// Interval is how often live heap is read; zero means 100ms.
	Interval   time.Duration
	Logger     *slog.Logger
	Registerer prometheus.Registerer

	// liveHeap reads the live heap; nil reads the runtime's figure.
	liveHeap func() uint64
}

// DefaultRefuseAt leaves room for the requests already admitted (bounded by
// the receivers' decode budget, which Headroom sizes) and for queries.
const DefaultRefuseAt = 0.7

// Guard watches the live heap. A nil *Guard never reports pressure, so
// receivers can hold one whether or not a limit is configured.
type Guard struct {
	opts     Options
	goLimit  int64
	pressure atomic.Bool
}

// New sets the Go runtime's soft memory limit to Limit minus Reserved and
// returns a guard that Run keeps up to date. It returns nil for a zero
// Limit: no cap, no guard.
func New(opts Options) *Guard {
	if opts.Limit <= 0 {
		return nil
	}
	if opts.RefuseAt <= 0 || opts.RefuseAt >= 1 {
		opts.RefuseAt = DefaultRefuseAt
	}
	if opts.Interval <= 0 {
		opts.Interval = 100 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.liveHeap == nil {
		opts.liveHeap = readLiveHeap
	}
	g := &Guard{opts: opts, goLimit: max(opts.Limit-opts.Reserved, opts.Limit/4)}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vigil_memory_limit_bytes",
			Help: "The configured memory cap (limits.memory_limit).",
		}, func() float64 { return float64(opts.Limit) }))
		opts.Registerer.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vigil_memory_pressure",
			Help: "1 while live heap is above the share of limits.memory_limit at which ingest is refused.",
		}, func() float64 {
			if g.Pressure() {
				return 1
			}
			return 0
		}))
	}
	debug.SetMemoryLimit(g.goLimit)
	return g
}

// GoLimit is the soft limit given to the Go runtime.
func (g *Guard) GoLimit() int64 { return g.goLimit }

// Headroom is the Go heap above the point where ingest is refused: what
// the requests already admitted may still use while being decoded. Zero
// for a nil guard (no cap).
func (g *Guard) Headroom() int64 {
	if g == nil {
		return 0
	}
	return int64(float64(g.goLimit) * (1 - g.opts.RefuseAt))
}

// Pressure reports whether ingest should be refused now.
func (g *Guard) Pressure() bool {
	return g != nil && g.pressure.Load()
}

// Run reads the live heap every Interval until ctx is done.
func (g *Guard) Run(ctx context.Context) {
	if g == nil {
		return
	}
	t := time.NewTicker(g.opts.Interval)
	defer t.Stop()
	for {
		g.check()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (g *Guard) check() {
	live := float64(g.opts.liveHeap())
	high := g.opts.RefuseAt * float64(g.goLimit)
	low := (g.opts.RefuseAt - 0.05) * float64(g.goLimit)
	switch {
	case !g.pressure.Load() && live > high:
		g.pressure.Store(true)
		g.opts.Logger.Warn("memory pressure: refusing ingest until live heap falls",
			"live_heap_bytes", int64(live), "refuse_above_bytes", int64(high), "memory_limit_bytes", g.opts.Limit)
	case g.pressure.Load() && live < low:
		g.pressure.Store(false)
		g.opts.Logger.Info("memory pressure over: accepting ingest again", "live_heap_bytes", int64(live))
	}
}

// readLiveHeap is the heap the last garbage collection found reachable:
// unlike the heap's current size it does not count garbage waiting for the
// next cycle, which under a soft limit is most of what grows.
func readLiveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
