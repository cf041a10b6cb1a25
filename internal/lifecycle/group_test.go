package lifecycle

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Every component a test starts has returned by then: a stop that leaves a
// goroutine behind has not fully stopped.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// journal records what components did, in order.
type journal struct {
	mu      sync.Mutex
	entries []string
}

func (j *journal) add(s string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.entries = append(j.entries, s)
}

func (j *journal) get() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.entries)
}

// recording runs until stopped and notes its start and its stop.
func recording(j *journal, name string) Component {
	return Func(func(ctx context.Context) error {
		j.add("start " + name)
		<-ctx.Done()
		j.add("stop " + name)
		return nil
	})
}

// waitUntil polls cond for up to a few seconds.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

var threeStages = []Stage{{Name: "first"}, {Name: "second"}, {Name: "third"}}

// stopOrder is the stage of each "stop" entry, in order.
func stopOrder(entries []string, stageOf map[string]string) []string {
	var out []string
	for _, e := range entries {
		if name, ok := strings.CutPrefix(e, "stop "); ok {
			out = append(out, stageOf[name])
		}
	}
	return out
}

func TestGroupStopsStageAfterStage(t *testing.T) {
	// Added in an order unlike the stop's, as a server starts its
	// listener before its storage but stops it first.
	components := []struct{ stage, name string }{
		{"third", "storage"},
		{"first", "http"},
		{"second", "queue a"},
		{"first", "grpc"},
		{"second", "queue b"},
		{"third", "index"},
	}
	var j journal
	g := NewGroup(Options{Stages: threeStages, Budget: time.Second})
	stageOf := map[string]string{}
	for _, c := range components {
		g.Go(c.stage, c.name, recording(&j, c.name))
		stageOf[c.name] = c.stage
	}
	waitUntil(t, "every component to start", func() bool { return len(j.get()) == len(components) })
	if err := g.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	got := stopOrder(j.get(), stageOf)
	want := []string{"first", "first", "second", "second", "third", "third"}
	if !slices.Equal(got, want) {
		t.Errorf("stages of the stops = %v, want %v (journal %v)", got, want, j.get())
	}
	if err := g.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// TestGroupStartsEachComponentWhenAdded: a component runs from its Go on,
// before the next is even built, as a server's HTTP listener answers
// /-/ready while its storage still opens.
func TestGroupStartsEachComponentWhenAdded(t *testing.T) {
	var j journal
	g := NewGroup(Options{Stages: threeStages})
	defer g.Stop()
	for _, name := range []string{"http", "storage", "grpc"} {
		g.Go("first", name, recording(&j, name))
		waitUntil(t, name+" to start before the next is added", func() bool {
			return slices.Contains(j.get(), "start "+name)
		})
	}
	if got, want := j.get(), []string{"start http", "start storage", "start grpc"}; !slices.Equal(got, want) {
		t.Errorf("journal %v, want %v", got, want)
	}
}

func TestGroupFailureStopsEveryComponent(t *testing.T) {
	var j journal
	g := NewGroup(Options{Stages: threeStages, Budget: time.Second})
	g.Go("third", "storage", recording(&j, "storage"))
	g.Go("first", "http", recording(&j, "http"))
	boom := errors.New("listen: address in use")
	fail := make(chan struct{})
	g.Go("second", "grpc", Func(func(ctx context.Context) error {
		<-fail
		return boom
	}))
	waitUntil(t, "the components to start", func() bool { return len(j.get()) == 2 })
	close(fail)

	select {
	case <-g.Failed():
	case <-time.After(10 * time.Second):
		t.Fatal("Failed not closed by a component's failure")
	}
	if err := g.Stop(); !errors.Is(err, boom) {
		t.Fatalf("Stop = %v, want the failure %v", err, boom)
	}
	got := stopOrder(j.get(), map[string]string{"http": "first", "storage": "third"})
	if want := []string{"first", "third"}; !slices.Equal(got, want) {
		t.Errorf("stops after the failure = %v, want %v", got, want)
	}
}

func TestGroupErrorAfterStopIsNoFailure(t *testing.T) {
	g := NewGroup(Options{Stages: threeStages})
	g.Go("first", "flusher", OnStop(func(context.Context) error { return errors.New("final flush failed") }))
	if err := g.Stop(); err != nil {
		t.Errorf("Stop = %v; an error while stopping is logged, not a failure of the group", err)
	}
	select {
	case <-g.Failed():
		t.Error("Failed closed by an error returned during the stop")
	default:
	}
}

// TestGroupStopDeadlines: a stage with a share of the budget bounds its
// components' stops (their StopContext ends then) and waits no longer for
// one that ignores it; a stage without waits as long as it takes.
func TestGroupStopDeadlines(t *testing.T) {
	const budget = 300 * time.Millisecond
	for _, tc := range []struct {
		name        string
		share       float64
		stopTakes   time.Duration // how long the component's stop takes, ignoring its context
		wantBounded bool
	}{
		{name: "stop within the share", share: 2.0 / 3, stopTakes: 0, wantBounded: true},
		{name: "stop ignoring the share is left", share: 2.0 / 3, stopTakes: time.Hour, wantBounded: true},
		{name: "no deadline waits", share: 0, stopTakes: 2 * budget, wantBounded: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			defer close(release) // the ignoring component ends with the test
			type stopDeadline struct {
				at  time.Time
				set bool
			}
			seen := make(chan stopDeadline, 1)
			g := NewGroup(Options{Stages: []Stage{{Name: "slow", Share: tc.share}, {Name: "last"}}, Budget: budget})
			g.Go("slow", "slow", OnStop(func(ctx context.Context) error {
				at, set := ctx.Deadline()
				seen <- stopDeadline{at, set}
				select {
				case <-time.After(tc.stopTakes):
				case <-release:
				}
				return nil
			}))
			var j journal
			g.Go("last", "storage", recording(&j, "storage"))
			waitUntil(t, "the components to start", func() bool { return len(j.get()) == 1 })

			begin := time.Now()
			if err := g.Stop(); err != nil {
				t.Fatal(err)
			}
			took := time.Since(begin)
			if got := j.get(); !slices.Contains(got, "stop storage") {
				t.Errorf("the next stage was not stopped: %v", got)
			}
			dl := <-seen
			if !tc.wantBounded {
				if took < tc.stopTakes {
					t.Errorf("Stop took %v: it did not wait for a stage without a deadline (%v)", took, tc.stopTakes)
				}
				if dl.set {
					t.Errorf("stop context of a stage without a deadline ends %v after the stop began", dl.at.Sub(begin))
				}
				return
			}
			share := time.Duration(float64(budget) * tc.share)
			if !dl.set || dl.at.Before(begin.Add(share-50*time.Millisecond)) || dl.at.After(begin.Add(share+50*time.Millisecond)) {
				t.Errorf("stop context deadline %v after the stop began (set %v), want about %v", dl.at.Sub(begin), dl.set, share)
			}
			if limit := share + abandonGrace + 200*time.Millisecond; took > limit {
				t.Errorf("Stop took %v, want within the stage's share %v (+ grace)", took, share)
			}
		})
	}
}

func TestGroupGoAfterStopStartsNothing(t *testing.T) {
	g := NewGroup(Options{Stages: threeStages})
	if err := g.Stop(); err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{}, 1)
	g.Go("first", "late", Func(func(ctx context.Context) error {
		started <- struct{}{}
		return nil
	}))
	select {
	case <-started:
		t.Error("a component added after the stop was started")
	case <-time.After(50 * time.Millisecond):
	}
}

func TestGroupUnknownStagePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Go with an unknown stage did not panic")
		}
	}()
	NewGroup(Options{Stages: threeStages}).Go("fourth", "x", OnStop(func(context.Context) error { return nil }))
}
