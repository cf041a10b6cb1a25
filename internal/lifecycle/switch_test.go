package lifecycle

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// counted counts its runs and fails the test if two ever overlap.
type counted struct {
	t       *testing.T
	active  atomic.Int32
	runs    atomic.Int32
	stopped atomic.Int32
	// stopTakes is how long a stop takes, ignoring its stop context.
	stopTakes time.Duration
}

func (c *counted) Run(ctx context.Context) error {
	if c.active.Add(1) != 1 {
		c.t.Error("two runs of one component overlap")
	}
	c.runs.Add(1)
	<-ctx.Done()
	time.Sleep(c.stopTakes)
	c.stopped.Add(1)
	c.active.Add(-1)
	return nil
}

// runSwitch runs s as a group would and returns its stop.
func runSwitch(t *testing.T, s *Switch) (stop func() error) {
	t.Helper()
	g := NewGroup(Options{Stages: []Stage{{Name: "leader"}}})
	g.Go("leader", "rules", s)
	return g.Stop
}

func TestSwitchOnOffOnAgain(t *testing.T) {
	c := &counted{t: t}
	s := NewSwitch(c)
	stop := runSwitch(t, s)
	defer stop()

	if s.Running() {
		t.Fatal("a new switch runs its component")
	}
	for round := int32(1); round <= 2; round++ {
		if err := s.On(); err != nil {
			t.Fatalf("On: %v", err)
		}
		waitUntil(t, "the component to run", func() bool { return c.runs.Load() == round })
		if !s.Running() {
			t.Errorf("round %d: Running = false after On", round)
		}
		if err := s.On(); err != nil || c.runs.Load() != round {
			t.Errorf("round %d: On while on = %v and %d runs; want nil and no new run", round, err, c.runs.Load())
		}
		if err := s.Off(context.Background()); err != nil {
			t.Fatalf("Off: %v", err)
		}
		// Off returns once the run has ended, not merely asked it to.
		if got := c.stopped.Load(); got != round {
			t.Errorf("round %d: Off returned with %d runs ended, want %d", round, got, round)
		}
		if s.Running() {
			t.Errorf("round %d: Running = true after Off", round)
		}
	}
}

func TestSwitchOnBeforeItsRun(t *testing.T) {
	c := &counted{t: t}
	s := NewSwitch(c)
	if err := s.On(); err != nil {
		t.Fatal(err)
	}
	stop := runSwitch(t, s)
	waitUntil(t, "the component to run once the switch runs", func() bool { return c.runs.Load() == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if c.stopped.Load() != 1 {
		t.Error("the group's stop did not stop the running component")
	}
}

func TestSwitchGroupStopStopsItAndOnIsRefused(t *testing.T) {
	c := &counted{t: t, stopTakes: 50 * time.Millisecond}
	s := NewSwitch(c)
	stop := runSwitch(t, s)
	if err := s.On(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the component to run", func() bool { return c.runs.Load() == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if c.stopped.Load() != 1 {
		t.Error("the group's stop returned before the switched component had stopped")
	}
	if err := s.On(); !errors.Is(err, ErrStopped) {
		t.Errorf("On after the stop = %v, want ErrStopped", err)
	}
	if c.runs.Load() != 1 {
		t.Errorf("%d runs, want 1", c.runs.Load())
	}
}

func TestSwitchOffGivesUpAtItsDeadline(t *testing.T) {
	release := make(chan struct{})
	ended := make(chan struct{}, 2) // one per run
	s := NewSwitch(Func(func(ctx context.Context) error {
		defer func() { ended <- struct{}{} }()
		<-ctx.Done()
		<-release // ignores its stop context
		return nil
	}))
	stop := runSwitch(t, s)
	if err := s.On(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the component to run", s.Running)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Off(ctx); !errors.Is(err, ErrAbandoned) {
		t.Fatalf("Off past its deadline = %v, want ErrAbandoned", err)
	}
	if err := s.On(); !errors.Is(err, ErrStopping) {
		t.Errorf("On while the last run still stops = %v, want ErrStopping", err)
	}
	close(release)
	<-ended
	if err := s.On(); err != nil {
		t.Errorf("On once the last run ended = %v", err)
	}
	// This run ignores its stop too until released, which it is already.
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestSwitchConcurrentToggles(t *testing.T) {
	c := &counted{t: t, stopTakes: time.Millisecond}
	s := NewSwitch(c)
	stop := runSwitch(t, s)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 50 {
				if i%2 == 0 {
					if err := s.On(); err != nil {
						t.Errorf("On: %v", err)
					}
				} else if err := s.Off(context.Background()); err != nil {
					t.Errorf("Off: %v", err)
				}
			}
		})
	}
	wg.Wait()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if runs, stops := c.runs.Load(), c.stopped.Load(); runs == 0 || runs != stops {
		t.Errorf("%d runs, %d stopped; want every run stopped", runs, stops)
	}
}

func TestSwitchOffStopContext(t *testing.T) {
	got := make(chan context.Context, 1)
	s := NewSwitch(OnStop(func(ctx context.Context) error {
		got <- ctx
		return nil
	}))
	stop := runSwitch(t, s)
	defer stop()
	if err := s.On(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the component to run", s.Running)
	type key struct{}
	ctx := context.WithValue(context.Background(), key{}, "off")
	if err := s.Off(ctx); err != nil {
		t.Fatal(err)
	}
	if v := (<-got).Value(key{}); v != "off" {
		t.Errorf("the component's stop ran in another context than Off's (value %v)", v)
	}
}
