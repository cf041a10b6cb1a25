package vigil

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/pprof"
	"sync"
	"time"

	otelpyroscope "github.com/grafana/otel-profiling-go"
	"github.com/grafana/pyroscope-go"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
)

// Profiling configures continuous profiling: the process's profiles are
// sent to vigil's Pyroscope-compatible ingest (POST /ingest on vigil's web
// address) with pyroscope-go, and the tracer provider is wrapped with
// otel-profiling-go so that the samples taken inside a root span carry its
// span id and the span carries pyroscope.profile.id: vigil then answers
// the profile of one span. Off unless Enabled.
type Profiling struct {
	Enabled bool
	// ServerAddress is vigil's web address, e.g. "http://vigil:7070" (not
	// the OTLP endpoint). Required when Enabled.
	ServerAddress string
	// Types are the profiles sent; empty means CPU, alloc and inuse
	// space, and goroutines. Mutex and block profiles also need
	// runtime.SetMutexProfileFraction / SetBlockProfileRate.
	Types []pyroscope.ProfileType
	// UploadRate is how often profiles are sent (default 15s).
	UploadRate time.Duration
	// Tags are labels of every profile (the service's version is added).
	Tags map[string]string
	// ForceGC runs a garbage collection before a memory profile when none
	// ran since the last upload, so that every upload has a memory
	// profile (pyroscope-go's default). Off by default: a forced
	// collection marks the whole live heap, a cost that grows with the
	// heap rather than the load (docs/performance.md, "Profiles"), and
	// the runtime collects at least every two minutes anyway, so memory
	// profiles still come at least that often from an idle service.
	ForceGC bool
	// BasicAuthUser and BasicAuthPassword are an ingest credential when
	// vigil runs with authentication.
	BasicAuthUser, BasicAuthPassword string
}

// defaultProfileTypes cost little: the CPU profiler samples at 100 Hz,
// the others read counters the runtime keeps anyway.
var defaultProfileTypes = []pyroscope.ProfileType{
	pyroscope.ProfileCPU, pyroscope.ProfileAllocSpace, pyroscope.ProfileInuseSpace, pyroscope.ProfileGoroutines,
}

// processProfiler is the process's profiler. Go has one CPU profiler per
// process, so services run in one process (the demo shop's four) share
// it: the first to enable profiling starts it, the last to shut down
// stops it. This is the one process-wide state of the SDK, because the
// profiler it stands for is process-wide.
var processProfiler sharedProfiler

// sharedProfiler is a reference-counted pyroscope-go profiler.
type sharedProfiler struct {
	mu    sync.Mutex
	refs  int
	prof  *pyroscope.Profiler
	owner string // the service that started it, its application name
	addr  string
}

// acquire starts the profiler for service name, or joins the running one
// (which keeps the first service's address, tags and types). The returned
// release, called once per acquire, stops the profiler after the last.
func (sp *sharedProfiler) acquire(p Profiling, name, version string, log *slog.Logger) (release func() error, err error) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.refs == 0 {
		types := p.Types
		if len(types) == 0 {
			types = defaultProfileTypes
		}
		tags := map[string]string{}
		for k, v := range p.Tags {
			tags[k] = v
		}
		if version != "" {
			tags["service_version"] = version
		}
		prof, err := pyroscope.Start(pyroscope.Config{
			ApplicationName: name, ServerAddress: p.ServerAddress, Tags: tags,
			UploadRate: p.UploadRate, ProfileTypes: types, DisableGCRuns: !p.ForceGC,
			BasicAuthUser: p.BasicAuthUser, BasicAuthPassword: p.BasicAuthPassword,
			Logger: profilerLogger{log},
		})
		if err != nil {
			return nil, fmt.Errorf("vigil: profiling: %w", err)
		}
		sp.prof, sp.owner, sp.addr = prof, name, p.ServerAddress
	} else if p.ServerAddress != sp.addr {
		log.Warn("vigil: profiling: this process's profiler was started by another service and sends to its address",
			"started_by", sp.owner, "address", sp.addr, "ignored_address", p.ServerAddress)
	}
	sp.refs++
	var once sync.Once
	return func() error {
		var err error
		once.Do(func() { err = sp.release() })
		return err
	}, nil
}

func (sp *sharedProfiler) release() error {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.refs--
	if sp.refs > 0 {
		return nil
	}
	// Sends the profile of the last interval.
	err := sp.prof.Stop()
	sp.prof = nil
	return err
}

// describe says which profiler runs, for a snapshot's cpu_profile.txt;
// "" when none does. While the last service stops the profiler, which
// waits for a snapshot's CPU profile under way, it waits too: the next
// snapshot then finds the CPU profiler free.
func (sp *sharedProfiler) describe() string {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.refs == 0 {
		return ""
	}
	return fmt.Sprintf("pyroscope-go, started by service %s, shared by %d service(s) of this process, uploading to %s", sp.owner, sp.refs, sp.addr)
}

// running reports how many services share the profiler (tests).
func (sp *sharedProfiler) running() int {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return sp.refs
}

// startProfiling joins service name to the process's profiler and returns
// how to leave it, with tp wrapped to label samples with span ids.
func startProfiling(p Profiling, name, version string, tp trace.TracerProvider, log *slog.Logger) (release func() error, _ trace.TracerProvider, _ error) {
	if p.ServerAddress == "" {
		return nil, nil, errors.New("vigil: Profiling.ServerAddress is required (vigil's web address, e.g. http://vigil:7070)")
	}
	release, err := processProfiler.acquire(p, name, version, log)
	if err != nil {
		return nil, nil, err
	}
	// Without the span_name label: vigil keeps a sample's span_id (and
	// the profile's service) only, so the name would be made for every
	// span and sent in every sample for nothing.
	return release, otelpyroscope.NewTracerProvider(tp, otelpyroscope.WithSpanNameLabelScope(otelpyroscope.ScopeNone)), nil
}

// serviceLabel is the pprof label naming the service whose request a
// sample was taken in. With one profiler for the process, it is what
// tells the services' samples apart: vigil files each sample under the
// service it names rather than under the profiler's application name.
const serviceLabel = "service_name"

// labelRequests runs each request under the service_name pprof label.
// It wraps the tracing middleware, so the span_id label otel-profiling-go
// adds when the span starts is merged with it rather than replacing it.
func labelRequests(service string, next http.Handler) http.Handler {
	labels := pprof.Labels(serviceLabel, service)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pprof.Do(r.Context(), labels, func(ctx context.Context) {
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	})
}

// labelGRPC returns interceptors that run each call under the
// service_name pprof label. The server span is already started (by the
// stats handler) and its labels are in the call's context, so pprof.Do
// adds service_name to them.
func labelGRPC(service string) []grpc.ServerOption {
	labels := pprof.Labels(serviceLabel, service)
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
			pprof.Do(ctx, labels, func(ctx context.Context) { resp, err = handler(ctx, req) })
			return resp, err
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
			pprof.Do(ss.Context(), labels, func(ctx context.Context) { err = handler(srv, labelledStream{ss, ctx}) })
			return err
		}),
	}
}

// labelledStream is a server stream whose context carries the labels.
type labelledStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s labelledStream) Context() context.Context { return s.ctx }

// profilerLogger passes pyroscope-go's errors (a refused upload) to the
// service's logger as warnings; its info and debug lines are dropped.
type profilerLogger struct{ log *slog.Logger }

func (l profilerLogger) Infof(string, ...any)  {}
func (l profilerLogger) Debugf(string, ...any) {}
func (l profilerLogger) Errorf(format string, args ...any) {
	l.log.Warn("vigil: profiling: " + fmt.Sprintf(format, args...))
}
