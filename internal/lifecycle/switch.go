package lifecycle

import (
	"context"
	"errors"
	"sync"
)

// ErrStopped is returned by On once the switch itself has stopped.
var ErrStopped = errors.New("lifecycle: switch stopped")

// ErrStopping is returned by On while the previous run, whose Off gave up
// waiting, is still stopping: two runs of one component never overlap.
var ErrStopping = errors.New("lifecycle: previous run still stopping")

// Switch is a component that runs another one only while it is turned on,
// so that it can be started and stopped while the server runs: what only
// a cluster's leader may do (evaluate rules, send notifications) runs on
// the leader alone. Add the Switch to the group; the group's stop turns it
// off.
//
// Each On calls the component's Run again, so a component that can run only
// once needs a new instance per run: wrap its constructor in a Func. On and
// Off may be called from any goroutine; they take turns.
type Switch struct {
	c Component

	// toggle is held for the whole of On, Off and the final stop, so that
	// an On waits for an Off before it and runs never overlap.
	toggle  sync.Mutex
	running bool // Run has begun
	ended   bool // Run has returned: nothing starts again
	on      bool // wanted on
	cur     *run // the component's last run, nil when off
}

// NewSwitch returns a switch for c, off.
func NewSwitch(c Component) *Switch { return &Switch{c: c} }

// Run runs c whenever the switch is on, until ctx ends; then it stops c,
// within ctx's stop context, and returns c's error.
func (s *Switch) Run(ctx context.Context) error {
	s.toggle.Lock()
	if s.running || s.ended {
		s.toggle.Unlock()
		return errors.New("lifecycle: switch run twice")
	}
	s.running = true
	if s.on {
		s.cur = start(s.c, nil)
	}
	s.toggle.Unlock()

	<-ctx.Done()
	s.toggle.Lock()
	defer s.toggle.Unlock()
	s.ended = true
	return s.stopLocked(StopContext(ctx))
}

// On turns the switch on: c runs from now on (or from when the switch's
// own Run begins) until Off or the switch's stop. A run that ended on its
// own counts as off, and On starts c again.
func (s *Switch) On() error {
	s.toggle.Lock()
	defer s.toggle.Unlock()
	if s.ended {
		return ErrStopped
	}
	if s.cur != nil {
		if !s.cur.finished() {
			if !s.on {
				return ErrStopping
			}
			return nil // on already
		}
		s.cur = nil
	}
	s.on = true
	if s.running {
		s.cur = start(s.c, nil)
	}
	return nil
}

// Off turns the switch off: it stops c, its stop running within ctx, and
// waits for c's Run to return, until ctx ends (ErrAbandoned; c goes on
// stopping, and On refuses to start it again until it has). It returns c's
// error.
func (s *Switch) Off(ctx context.Context) error {
	s.toggle.Lock()
	defer s.toggle.Unlock()
	s.on = false
	return s.stopLocked(ctx)
}

func (s *Switch) stopLocked(ctx context.Context) error {
	r := s.cur
	if r == nil {
		return nil
	}
	r.stop(ctx)
	select {
	case <-r.done:
	case <-ctx.Done():
		return ErrAbandoned // s.cur stays: the run has not ended
	}
	s.cur = nil
	return r.err
}

// Running reports whether c is running now; it waits for an On or Off in
// progress.
func (s *Switch) Running() bool {
	s.toggle.Lock()
	defer s.toggle.Unlock()
	return s.cur != nil && !s.cur.finished()
}
