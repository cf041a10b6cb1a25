// Package diag exposes opt-in runtime diagnostics: the net/http/pprof
// handlers and a one-shot /debug/snapshot archive bundling goroutines, heap
// and CPU profiles, runtime metrics, open TCP sockets and build info.
//
// Both are off by default because they leak internals and cost CPU; mount
// them only on an internal/admin listener.
//
// Importing this package imports net/http/pprof, whose init registers its
// handlers on http.DefaultServeMux (Go offers no way to avoid that while
// reusing the standard handlers). Mount itself only touches the mux it is
// given; services must not expose http.DefaultServeMux publicly.
package diag

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"runtime/debug"
	runtimepprof "runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	pyroscopepprof "github.com/grafana/pyroscope-go/http/pprof"
)

// DefaultCPUProfileDuration is how long the snapshot's CPU profile runs when
// Options.CPUProfileDuration is zero.
const DefaultCPUProfileDuration = 5 * time.Second

// MaxCPUProfileDuration bounds the seconds parameter of /debug/snapshot: a
// caller may ask for a longer CPU profile than the default, not for one
// that holds the process's only profiler for minutes.
const MaxCPUProfileDuration = 60 * time.Second

// Options configures Mount. The zero value mounts nothing.
type Options struct {
	// EnablePprof mounts the net/http/pprof handlers under /debug/pprof/.
	EnablePprof bool
	// EnableSnapshot mounts GET /debug/snapshot. Its optional seconds
	// parameter (1 to MaxCPUProfileDuration in whole seconds) sets the CPU
	// profile's length for that one snapshot, as /debug/pprof/profile's
	// does.
	EnableSnapshot bool
	// CPUProfileDuration is the length of the snapshot's CPU profile.
	// Zero or negative means DefaultCPUProfileDuration.
	CPUProfileDuration time.Duration
	// Logger records snapshot activity. Nil discards logs.
	Logger *slog.Logger
	// ContinuousProfiler, when set, describes the continuous profiler
	// running in the process ("" when none runs), so that a snapshot can
	// say how its CPU profile was taken. The SDK's Service.Mount sets it
	// from the process's shared profiler.
	ContinuousProfiler func() string
}

// Mount registers the enabled diagnostics endpoints on mux. With both
// options false it registers nothing, so the paths answer 404.
func Mount(mux *http.ServeMux, opts Options) {
	if opts.EnablePprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		// pyroscope-go's handler rather than net/http/pprof's: the same
		// profile, but it also works while a continuous profiler holds the
		// process's CPU profiler (see cpuProfile).
		mux.HandleFunc("/debug/pprof/profile", pyroscopepprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	if opts.EnableSnapshot {
		mux.Handle("GET /debug/snapshot", newSnapshotHandler(opts))
	}
}

type snapshotHandler struct {
	logger     *slog.Logger
	continuous func() string
	cpuFor     time.Duration
	procRoot   string
	busy       atomic.Bool
	// wait pauses for the CPU profile; tests replace it to hold a snapshot
	// in progress deterministically.
	wait func(ctx context.Context, d time.Duration) error
}

func newSnapshotHandler(opts Options) *snapshotHandler {
	h := &snapshotHandler{logger: opts.Logger, continuous: opts.ContinuousProfiler, cpuFor: opts.CPUProfileDuration, procRoot: "/proc", wait: sleepCtx}
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	if h.cpuFor <= 0 {
		h.cpuFor = DefaultCPUProfileDuration
	}
	if h.continuous == nil {
		h.continuous = func() string { return "" }
	}
	return h
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// entry is one file of the archive.
type entry struct {
	name string
	data []byte
}

func (h *snapshotHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// One at a time: a snapshot runs a CPU profile (process-wide, exclusive)
	// and allocates; concurrent ones would only fail or pile up load.
	if !h.busy.CompareAndSwap(false, true) {
		http.Error(w, "a snapshot is already in progress", http.StatusTooManyRequests)
		return
	}
	defer h.busy.Store(false)

	cpuFor := h.cpuFor
	if v := r.URL.Query().Get("seconds"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || time.Duration(n)*time.Second > MaxCPUProfileDuration {
			http.Error(w, fmt.Sprintf("seconds: want a whole number from 1 to %d", int(MaxCPUProfileDuration/time.Second)), http.StatusBadRequest)
			return
		}
		cpuFor = time.Duration(n) * time.Second
	}

	ctx := r.Context()
	h.logger.LogAttrs(ctx, slog.LevelInfo, "diag snapshot started", slog.Duration("cpu_profile", cpuFor))
	entries := h.collect(ctx, cpuFor)
	if ctx.Err() != nil {
		return // the client went away; nobody to answer
	}

	var buf bytes.Buffer
	if err := writeArchive(&buf, entries, time.Now()); err != nil {
		h.logger.LogAttrs(ctx, slog.LevelError, "diag snapshot archive failed", slog.String("error", err.Error()))
		http.Error(w, "building snapshot failed", http.StatusInternalServerError)
		return
	}
	name := "snapshot-" + time.Now().UTC().Format("20060102T150405Z") + ".tar.gz"
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", fmt.Sprint(buf.Len()))
	_, _ = buf.WriteTo(w)
	h.logger.LogAttrs(ctx, slog.LevelInfo, "diag snapshot served", slog.Int("bytes", buf.Len()))
}

// collect gathers every archive file. A failing item becomes
// "<name>.error.txt" with the reason, so one broken source never costs the
// operator the rest of the snapshot.
func (h *snapshotHandler) collect(ctx context.Context, cpuFor time.Duration) []entry {
	var cpuHow []byte
	items := []struct {
		name string
		fn   func() ([]byte, error)
	}{
		{"goroutines.txt", func() ([]byte, error) { return profile("goroutine", 2) }},
		{"heap.pb.gz", func() ([]byte, error) { return profile("heap", 0) }},
		{"cpu.pb.gz", func() (b []byte, err error) { b, cpuHow, err = h.cpuProfile(ctx, cpuFor); return b, err }},
		{"cpu_profile.txt", func() ([]byte, error) { return cpuHow, nil }},
		{"runtime_metrics.txt", func() ([]byte, error) { return runtimeMetrics(), nil }},
		{"tcp_connections.txt", func() ([]byte, error) { return tcpConnections(h.procRoot), nil }},
		{"build.txt", buildInfo},
	}
	entries := make([]entry, 0, len(items))
	for _, it := range items {
		data, err := it.fn()
		if data == nil && err == nil {
			continue // nothing to say (cpu_profile.txt without a profile)
		}
		if err != nil {
			entries = append(entries, entry{it.name + ".error.txt", []byte(err.Error() + "\n")})
			continue
		}
		entries = append(entries, entry{it.name, data})
	}
	return entries
}

func profile(name string, debugLevel int) ([]byte, error) {
	p := runtimepprof.Lookup(name)
	if p == nil {
		return nil, fmt.Errorf("profile %q not found", name)
	}
	var buf bytes.Buffer
	if err := p.WriteTo(&buf, debugLevel); err != nil {
		return nil, fmt.Errorf("writing %s profile: %w", name, err)
	}
	return buf.Bytes(), nil
}

// ErrCPUProfileBusy is reported (in cpu.pb.gz.error.txt) when another CPU
// profile, e.g. another snapshot's or /debug/pprof/profile's, is already
// running.
var ErrCPUProfileBusy = errors.New("diag: a CPU profile is already running")

// cpuProfile takes the snapshot's CPU profile of cpuFor, and says how it
// was taken (cpu_profile.txt).
//
// Go has one CPU profiler per process, and a continuous profiler
// (pyroscope-go, the SDK's Config.Profiling) holds it all the time, so
// runtime/pprof.StartCPUProfile would fail. The profile is taken through
// pyroscope-go's CPU profile hand-off instead (its http/pprof handler is
// the public door to it at v1.5.0), which does the right thing in both
// cases: with no continuous profiler it is runtime/pprof's own profile;
// with one, the profiler ends and uploads its current profile, runs the
// snapshot's profile writing it both here and into its own next upload,
// and resumes when it ends. Its continuous profiles therefore miss
// nothing, its other profile types (heap, goroutines) run on untouched,
// and its Stop waits for the hand-off to end, so a service that stops
// the profiler during a snapshot neither leaves it stopped nor starts it
// twice. Stopping the whole profiler and starting it again with the same
// config, the alternative, would start a new upload session whose first
// alloc profile is a delta from zero (a spike of everything allocated
// since the process began), flush every profile type early, and need its
// own ordering against the SDK's start and stop of the profiler.
func (h *snapshotHandler) cpuProfile(ctx context.Context, cpuFor time.Duration) (_, how []byte, _ error) {
	continuous := h.continuous()
	// The handler profiles until its request's context ends: stop ends it
	// when the wait is over. Its seconds parameter is only a backstop
	// past that. The context is not the snapshot request's, whose server
	// the handler would check the CPU seconds against (it streams its
	// answer as it profiles; a snapshot answers after).
	pctx, stop := context.WithCancel(context.Background())
	defer stop()
	wctx, endWait := context.WithCancel(ctx)
	waited := make(chan error, 1)
	wait := cpuFor
	if continuous != "" {
		// The hand-off first ends and encodes the profiler's own profile,
		// which takes a few milliseconds (more on a loaded machine), and
		// nothing tells from outside when the snapshot's began: wait a
		// little longer so that it lasts at least the seconds asked for.
		wait += handOffAllowance
	}
	go func() {
		err := h.wait(wctx, wait)
		stop()
		waited <- err
	}()
	backstop := int((cpuFor+time.Second-1)/time.Second) + 1
	req, err := http.NewRequestWithContext(pctx, http.MethodGet, "/debug/pprof/profile?seconds="+strconv.Itoa(backstop), nil)
	if err != nil {
		endWait()
		<-waited
		return nil, nil, fmt.Errorf("cpu profile request: %w", err)
	}
	var out profileResponse
	started := time.Now()
	pyroscopepprof.Profile(&out, req)
	took := time.Since(started)
	endWait() // the profile failed to start: no need to wait on
	werr := <-waited
	if out.status >= http.StatusBadRequest {
		return nil, nil, fmt.Errorf("%w: %s", ErrCPUProfileBusy, strings.TrimSpace(strings.TrimPrefix(out.body.String(), "Could not enable CPU profiling: ")))
	}
	if werr != nil {
		return nil, nil, fmt.Errorf("cpu profile interrupted: %w", werr)
	}
	if continuous == "" {
		how = fmt.Appendf(nil, "method: runtime/pprof\nseconds: %.1f\ncontinuous_profiler: none\n", took.Seconds())
	} else {
		how = fmt.Appendf(nil, "method: through the continuous profiler\nseconds: %.1f\ncontinuous_profiler: %s\n"+
			"note: the continuous profiler's own CPU profile was cut for these seconds; their samples are in this file and in its next upload\n",
			took.Seconds(), continuous)
	}
	return out.body.Bytes(), how, nil
}

// handOffAllowance is how much longer a snapshot waits for its CPU
// profile when it is taken through a continuous profiler.
const handOffAllowance = 200 * time.Millisecond

// profileResponse keeps what the profile handler answers.
type profileResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *profileResponse) Header() http.Header {
	if r.header == nil {
		r.header = http.Header{}
	}
	return r.header
}

func (r *profileResponse) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *profileResponse) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}

func buildInfo() ([]byte, error) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return nil, errors.New("build info unavailable (binary built without module support)")
	}
	return []byte(bi.String()), nil
}

func writeArchive(w io.Writer, entries []entry, now time.Time) error {
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.data)), ModTime: now, Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("tar header %s: %w", e.name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return fmt.Errorf("tar data %s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("closing tar: %w", err)
	}
	if err := gz.Close(); err != nil {
		return fmt.Errorf("closing gzip: %w", err)
	}
	return nil
}
