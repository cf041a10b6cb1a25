package lifecycle

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestAdapters: a Serve/Shutdown pair or a Run/Stop pair returns an error
// of its own at once and otherwise stops with its context, after the stop
// has made it return.
func TestAdapters(t *testing.T) {
	boom := errors.New("listener closed")
	for _, tc := range []struct {
		name string
		// adapt builds the component from something that serves until
		// stopped (or fails with fail).
		adapt func(serve func() error, stop func()) Component
	}{
		{"Serve", func(serve func() error, stop func()) Component {
			return Serve(serve, func(context.Context) error { stop(); return nil })
		}},
		{"RunStop", RunStop},
	} {
		t.Run(tc.name+" fails", func(t *testing.T) {
			c := tc.adapt(func() error { return boom }, func() {})
			if err := c.Run(context.Background()); !errors.Is(err, boom) {
				t.Errorf("Run = %v, want %v", err, boom)
			}
		})
		t.Run(tc.name+" stops", func(t *testing.T) {
			stopped := make(chan struct{})
			served := false
			c := tc.adapt(func() error {
				<-stopped
				served = true
				return nil
			}, func() { close(stopped) })
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(10*time.Millisecond, cancel)
			if err := c.Run(ctx); err != nil {
				t.Errorf("Run = %v", err)
			}
			if !served {
				t.Error("Run returned before serve did")
			}
		})
	}
}

func TestStopContextOutsideAGroupNeverEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if StopContext(ctx).Done() != nil {
		t.Error("the stop context of a cancelled context outside a group can end")
	}
}
