package vigil

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	otelpyroscope "github.com/grafana/otel-profiling-go"
	"github.com/grafana/pyroscope-go"
	"go.opentelemetry.io/otel/trace"
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
	// BasicAuthUser and BasicAuthPassword are an ingest credential when
	// vigil runs with authentication.
	BasicAuthUser, BasicAuthPassword string
}

// defaultProfileTypes cost little: the CPU profiler samples at 100 Hz,
// the others read counters the runtime keeps anyway.
var defaultProfileTypes = []pyroscope.ProfileType{
	pyroscope.ProfileCPU, pyroscope.ProfileAllocSpace, pyroscope.ProfileInuseSpace, pyroscope.ProfileGoroutines,
}

// startProfiling starts the profiler for service name and returns it
// with tp wrapped to label samples with span ids.
func startProfiling(p Profiling, name, version string, tp trace.TracerProvider, log *slog.Logger) (*pyroscope.Profiler, trace.TracerProvider, error) {
	if p.ServerAddress == "" {
		return nil, nil, errors.New("vigil: Profiling.ServerAddress is required (vigil's web address, e.g. http://vigil:7070)")
	}
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
		UploadRate: p.UploadRate, ProfileTypes: types,
		BasicAuthUser: p.BasicAuthUser, BasicAuthPassword: p.BasicAuthPassword,
		Logger: profilerLogger{log},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("vigil: profiling: %w", err)
	}
	return prof, otelpyroscope.NewTracerProvider(tp), nil
}

// profilerLogger passes pyroscope-go's errors (a refused upload) to the
// service's logger as warnings; its info and debug lines are dropped.
type profilerLogger struct{ log *slog.Logger }

func (l profilerLogger) Infof(string, ...any)  {}
func (l profilerLogger) Debugf(string, ...any) {}
func (l profilerLogger) Errorf(format string, args ...any) {
	l.log.Warn("vigil: profiling: " + fmt.Sprintf(format, args...))
}
