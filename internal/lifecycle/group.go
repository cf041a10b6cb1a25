package lifecycle

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Stage is one step of a group's stop: its components stop together, after
// every component of the stages before it has returned.
type Stage struct {
	Name string
	// Share is the part of the group's Budget, counted from the start of
	// the stop, by which the stage's components must have returned; their
	// StopContext ends then, and the group waits no longer for those that
	// ignore it. 0 means no deadline: the group waits for the stage
	// however long it takes, for what must not be cut short (a final
	// flush, closing storage).
	Share float64
}

// Options configure a Group.
type Options struct {
	// Stages in stop order. Every component is added to one of them.
	Stages []Stage
	// Budget is the whole stop's time (a server's shutdown_timeout).
	Budget time.Duration
	// Logger receives a debug line per component stopped and an error
	// line per component whose stop failed or outlived its deadline.
	Logger *slog.Logger
}

// Group runs components from the moment they are added until Stop, which
// stops them stage by stage. It is what a server's main function holds:
// components start in the order they are added (each after what it needs
// has been built), and a failure of any one stops them all.
type Group struct {
	opts   Options
	failed chan struct{}

	mu       sync.Mutex
	members  []member
	stopping bool
	failure  *run  // the first component that failed
	err      error // its error

	stopOnce sync.Once
}

type member struct {
	stage, name string
	run         *run
}

// NewGroup returns an empty group.
func NewGroup(opts Options) *Group {
	if opts.Logger == nil {
		opts.Logger = discard
	}
	return &Group{opts: opts, failed: make(chan struct{})}
}

// Go starts c now, as the component called name in the given stage (one
// of Options.Stages; another name is a programming error and panics).
// Components added once the stop has begun are not started.
func (g *Group) Go(stage, name string, c Component) {
	if !g.hasStage(stage) {
		panic(fmt.Sprintf("lifecycle: component %q added to unknown stage %q", name, stage))
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopping {
		return
	}
	r := start(c, g.exited)
	g.members = append(g.members, member{stage: stage, name: name, run: r})
}

func (g *Group) hasStage(name string) bool {
	for _, s := range g.opts.Stages {
		if s.Name == name {
			return true
		}
	}
	return false
}

// exited records a component's return: before the stop, an error is a
// failure that the group's owner is told of through Failed.
func (g *Group) exited(r *run, err error) {
	if err == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopping || g.failure != nil {
		return
	}
	g.failure, g.err = r, err
	close(g.failed)
}

// Failed is closed when a component fails (returns an error before the
// stop): the owner should then Stop the group.
func (g *Group) Failed() <-chan struct{} { return g.failed }

// Stop stops every component, stage after stage in the order of
// Options.Stages, the components of a stage in parallel, and returns the
// first failure (nil when none failed). Later calls wait for nothing and
// return the same.
func (g *Group) Stop() error {
	g.stopOnce.Do(g.stop)
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

func (g *Group) stop() {
	g.mu.Lock()
	g.stopping = true
	members := g.members
	g.mu.Unlock()
	begin := time.Now()
	for _, s := range g.opts.Stages {
		ctx, cancel := context.WithCancel(context.Background())
		if s.Share > 0 {
			cancel()
			ctx, cancel = context.WithDeadline(context.Background(), begin.Add(time.Duration(float64(g.opts.Budget)*s.Share)))
		}
		var stage []member
		for _, m := range members {
			if m.stage == s.Name {
				m.run.stop(ctx)
				stage = append(stage, m)
			}
		}
		for _, m := range stage {
			g.waitFor(ctx, s, m, begin)
		}
		cancel()
	}
}

// abandonGrace is how long past its stage's deadline the group still waits
// for a component before leaving it to end with the process.
const abandonGrace = 250 * time.Millisecond

// waitFor waits for m until its stage's deadline and says how it ended.
func (g *Group) waitFor(ctx context.Context, s Stage, m member, begin time.Time) {
	log := g.opts.Logger.With("component", m.name, "stage", s.Name)
	if !m.run.wait(ctx, abandonGrace) {
		// A warning, not an error: what a component still does past its
		// deadline (a rule evaluation, a stalled client) was never
		// acknowledged, so nothing is lost by leaving it.
		log.Warn("still stopping at its shutdown deadline; left to end with the process",
			"err", fmt.Errorf("%s: %w", m.name, ErrAbandoned), "shutdown_timeout", g.opts.Budget)
		return
	}
	if m.run.err != nil && !g.isFailure(m.run) {
		log.Error("stop failed", "err", m.run.err)
		return
	}
	log.Debug("stopped", "after", time.Since(begin).Round(time.Millisecond).String())
}

// isFailure reports whether r is the failure that stopped the group, which
// the group's owner reports.
func (g *Group) isFailure(r *run) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.failure == r
}
