package vigil

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// notifyShutdown derives a context that ends on SIGTERM or SIGINT.
func notifyShutdown(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}

func (s *Service) run(ctx context.Context, servers []*http.Server, notify func(context.Context) (context.Context, context.CancelFunc)) error {
	ctx, stop := notify(ctx)
	defer stop()
	errc := make(chan error, len(servers))
	var wg sync.WaitGroup
	for _, srv := range servers {
		ln, err := net.Listen("tcp", srv.Addr)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	s.Health.SetReady(true)
	s.Logger.Info("serving", "service", s.Name, "servers", len(servers))

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	// Readiness goes first so load balancers stop routing here while the
	// servers still answer what is already on its way.
	s.Health.Shutdown()
	if runErr == nil {
		select {
		case <-time.After(s.cfg.ShutdownGrace):
		case runErr = <-errc:
		}
	}
	drainCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	for _, srv := range servers {
		if err := srv.Shutdown(drainCtx); err != nil {
			runErr = errors.Join(runErr, err)
		}
	}
	wg.Wait()
	s.Logger.Info("stopped serving; flushing telemetry", "service", s.Name)
	flushCtx, cancelFlush := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.FlushTimeout)
	defer cancelFlush()
	return errors.Join(runErr, s.Shutdown(flushCtx))
}
