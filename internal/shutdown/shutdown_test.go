package shutdown

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// stallingGRPC's graceful stop waits for a client that never leaves; only
// Stop ends it.
type stallingGRPC struct {
	stall   bool
	stopped chan struct{}
}

func (s *stallingGRPC) GracefulStop() {
	if s.stall {
		<-s.stopped
	}
}

func (s *stallingGRPC) Stop() { close(s.stopped) }

func TestGRPC(t *testing.T) {
	for _, tc := range []struct {
		name    string
		stall   bool
		wantErr error
	}{
		{name: "clients leave", wantErr: nil},
		{name: "client stalls", stall: true, wantErr: ErrForced},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
			defer cancel()
			begin := time.Now()
			err := GRPC(ctx, &stallingGRPC{stall: tc.stall, stopped: make(chan struct{})})
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Errorf("GRPC = %v, want %v", err, tc.wantErr)
			}
			if took := time.Since(begin); took > 2*time.Second {
				t.Errorf("took %v, past the deadline", took)
			}
		})
	}
}

// An HTTP client that sent half a body keeps a graceful shutdown waiting;
// at the deadline its connection is closed and its handler's context ends.
func TestHTTPStalledBody(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reading := make(chan struct{})
	handlerDone := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(handlerDone)
		close(reading)
		_, _ = io.ReadAll(r.Body)
	})}
	go func() { _ = srv.Serve(ln) }()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	if _, err := io.WriteString(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nhalf"); err != nil {
		t.Fatal(err)
	}
	<-reading
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	begin := time.Now()
	if err := HTTP(ctx, "test", srv); !errors.Is(err, ErrForced) {
		t.Errorf("HTTP = %v, want ErrForced", err)
	}
	select {
	case <-handlerDone:
	case <-time.After(2 * time.Second):
		t.Fatal("the stalled request's handler still runs after its connection was closed")
	}
	if took := time.Since(begin); took > 2*time.Second {
		t.Errorf("took %v, past the deadline", took)
	}
}

func TestBudgetSharesDeadline(t *testing.T) {
	b := NewBudget(3 * time.Second)
	lctx, cancel := b.Listeners(t.Context())
	defer cancel()
	actx, cancel2 := b.All(t.Context())
	defer cancel2()
	ld, _ := lctx.Deadline()
	ad, _ := actx.Deadline()
	if got := ad.Sub(ld); got < 900*time.Millisecond || got > 1100*time.Millisecond {
		t.Errorf("the drain keeps %v of a 3s budget, want 1s", got)
	}
}

func TestWait(t *testing.T) {
	for _, tc := range []struct {
		name    string
		stop    time.Duration // how long the stop takes
		wantErr error
	}{
		{name: "stops in time", stop: 0},
		{name: "stops too late", stop: time.Hour, wantErr: ErrAbandoned},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
			defer cancel()
			release := make(chan struct{})
			defer close(release)
			err := Wait(ctx, "test", func() {
				select {
				case <-time.After(tc.stop):
				case <-release:
				}
			})
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Errorf("Wait = %v, want %v", err, tc.wantErr)
			}
		})
	}
}
