package vigil

import (
	"context"
	"errors"
	"fmt"
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

// listen binds every server's Addr, all or none: on an error the
// listeners bound so far are closed again.
func listen(servers []*http.Server) ([]net.Listener, error) {
	lns := make([]net.Listener, 0, len(servers))
	for _, srv := range servers {
		ln, err := net.Listen("tcp", srv.Addr)
		if err != nil {
			for _, l := range lns {
				_ = l.Close()
			}
			return nil, err
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

func (s *Service) run(ctx context.Context, servers []*http.Server, notify func(context.Context) (context.Context, context.CancelFunc)) error {
	lns, err := listen(servers)
	if err != nil {
		return err
	}
	return s.serve(ctx, lns, servers, notify)
}

func (s *Service) serve(ctx context.Context, lns []net.Listener, servers []*http.Server, notify func(context.Context) (context.Context, context.CancelFunc)) error {
	if len(lns) != len(servers) {
		for _, l := range lns {
			_ = l.Close()
		}
		return fmt.Errorf("vigil: %d listeners for %d servers", len(lns), len(servers))
	}
	ctx, stop := notify(ctx)
	defer stop()
	errc := make(chan error, len(servers))
	var wg sync.WaitGroup
	for i, srv := range servers {
		ln := lns[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	s.Health.SetReady(true)
	if s.cfg.Registration.on() {
		port := 0
		if len(lns) > 0 {
			if a, ok := lns[0].Addr().(*net.TCPAddr); ok {
				port = a.Port
			}
		}
		if err := s.Register(port); err != nil {
			s.Logger.Warn("vigil registry: not registering", "error", err.Error())
		}
	}
	// The logger adds the service name to every record already.
	s.Logger.Info("serving", "servers", len(servers))

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	// Readiness goes first so load balancers stop routing here while the
	// servers still answer what is already on its way.
	s.Health.Shutdown()
	// Leaving the registry with readiness keeps discovery (and scrapes
	// fed by it) from sending more here while the servers drain.
	s.closeRegistration(ctx)
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
	s.Logger.Info("stopped serving; flushing telemetry")
	flushCtx, cancelFlush := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.FlushTimeout)
	defer cancelFlush()
	return errors.Join(runErr, s.Shutdown(flushCtx))
}
