// Package doctor finds where telemetry silently breaks (a target nobody
// scrapes successfully, a rule that can never fire) and says how to fix it.
// Checks run continuously inside the server and on demand; their findings
// are served as JSON, exported as series people can alert on, and printed
// by `vigil doctor`.
package doctor

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/vigil-observability/vigil/internal/config"
)

// Severity ranks findings.
type Severity string

// Severities, most urgent first.
const (
	Critical Severity = "critical"
	Warning  Severity = "warning"
	Info     Severity = "info"
)

func (s Severity) rank() int {
	switch s {
	case Critical:
		return 0
	case Warning:
		return 1
	}
	return 2
}

// Finding is one broken seam: what, where, the numbers that show it, the
// probable cause and the concrete fix.
type Finding struct {
	// Code is stable (target_down, rule_no_series, ...): docs/doctor.md
	// documents each, and alerts can match on it.
	Code     string   `json:"code"`
	Severity Severity `json:"severity"`
	// Subject names what is broken: a target, a rule, a service, a hop.
	Subject  string   `json:"subject"`
	Evidence Evidence `json:"evidence"`
	Cause    string   `json:"cause"`
	Fix      string   `json:"fix"`
}

// Evidence backs a finding with what was observed.
type Evidence struct {
	// Summary says in one line what was seen.
	Summary string `json:"summary"`
	// Values are the numbers behind it (ratios, durations in seconds).
	Values map[string]float64 `json:"values,omitempty"`
	// Window is the time range looked at, when there is one.
	Window string `json:"window,omitempty"`
	// Samples are up to five examples: trace ids, series, metric names.
	Samples []string `json:"samples,omitempty"`
}

// MaxSamples bounds Evidence.Samples.
const MaxSamples = 5

// Check is one diagnosis.
type Check interface {
	// Name identifies the check in errors and logs.
	Name() string
	// Run returns the check's current findings.
	Run(ctx context.Context) ([]Finding, error)
}

// NodeLocal is implemented by checks that judge only this process: what
// it received, what its own Alertmanager holds and sent. Where several
// vigil nodes share one store, each node runs these, while the checks of
// the shared data and configuration run on one node (Options.Leading), so
// that a finding is not raised once per node.
type NodeLocal interface {
	NodeLocal() bool
}

func isNodeLocal(c Check) bool {
	l, ok := c.(NodeLocal)
	return ok && l.NodeLocal()
}

// Options configures a Doctor.
type Options struct {
	Checks []Check
	// Leading, when set, makes this one of several nodes on a shared
	// store: the checks that are not NodeLocal run only while it reports
	// true (the cluster's leader), and are listed as skipped otherwise.
	// Nil runs every check.
	Leading func() bool
	// Interval between runs of Run's loop (DefaultInterval if 0).
	Interval   time.Duration
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
}

// DefaultInterval between continuous runs: doctor.interval's default.
const DefaultInterval = config.DefaultDoctorInterval

// Doctor runs the checks and keeps their latest findings.
type Doctor struct {
	opts    Options
	gauge   *prometheus.GaugeVec
	runMu   sync.Mutex // one run at a time
	mu      sync.Mutex
	report  Report
	runs    prometheus.Counter
	failing *prometheus.CounterVec
}

// Report is what the last run found.
type Report struct {
	Findings []Finding `json:"findings"`
	// CheckedAt is when the run finished (zero before the first).
	CheckedAt time.Time `json:"checked_at"`
	// Errors lists checks that could not run, by name.
	Errors []string `json:"errors,omitempty"`
	// Skipped lists the checks this node left to another: on a store
	// several nodes share, the leader runs the checks of the shared data.
	Skipped []string `json:"skipped,omitempty"`
}

// New returns a Doctor; start its loop with Run.
func New(opts Options) (*Doctor, error) {
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	d := &Doctor{
		opts: opts,
		gauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_doctor_findings",
			Help: "Findings of vigil's doctor: 1 per broken seam found in the last run, by code, severity and subject.",
		}, []string{"code", "severity", "subject"}),
		runs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_doctor_runs_total", Help: "Runs of vigil's doctor.",
		}),
		failing: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_doctor_check_errors_total", Help: "Doctor checks that could not run, by check.",
		}, []string{"check"}),
		report: Report{Findings: []Finding{}},
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{d.gauge, d.runs, d.failing} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return d, nil
}

// Run checks every Interval until ctx ends.
func (d *Doctor) Run(ctx context.Context) {
	t := time.NewTicker(d.opts.Interval)
	defer t.Stop()
	for {
		d.Check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Check runs every check now and returns (and keeps) the report.
func (d *Doctor) Check(ctx context.Context) Report {
	d.runMu.Lock()
	defer d.runMu.Unlock()
	r := Report{Findings: []Finding{}}
	ctx = withRunMemo(ctx)
	leading := d.opts.Leading == nil || d.opts.Leading()
	for _, c := range d.opts.Checks {
		if !leading && !isNodeLocal(c) {
			r.Skipped = append(r.Skipped, c.Name())
			continue
		}
		fs, err := c.Run(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return d.Last()
			}
			d.opts.Logger.Warn("doctor check failed", "check", c.Name(), "err", err)
			d.failing.WithLabelValues(c.Name()).Inc()
			r.Errors = append(r.Errors, c.Name()+": "+err.Error())
			continue
		}
		for _, f := range fs {
			if len(f.Evidence.Samples) > MaxSamples {
				f.Evidence.Samples = f.Evidence.Samples[:MaxSamples]
			}
			r.Findings = append(r.Findings, f)
		}
	}
	slices.SortFunc(r.Findings, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(a.Severity.rank(), b.Severity.rank()), cmp.Compare(a.Code, b.Code), cmp.Compare(a.Subject, b.Subject))
	})
	r.CheckedAt = d.opts.Now().UTC()
	d.runs.Inc()
	d.gauge.Reset()
	for _, f := range r.Findings {
		d.gauge.WithLabelValues(f.Code, string(f.Severity), f.Subject).Set(1)
	}
	d.mu.Lock()
	d.report = r
	d.mu.Unlock()
	return r
}

// Last returns the latest report.
func (d *Doctor) Last() Report {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.report
}

// Handler serves GET /api/doctor: the latest report, or a fresh one with
// ?refresh=1.
func (d *Doctor) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed; use GET", http.StatusMethodNotAllowed)
			return
		}
		rep := d.Last()
		if r.URL.Query().Get("refresh") != "" || rep.CheckedAt.IsZero() {
			rep = d.Check(r.Context())
		}
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewEncoder(w).Encode(rep); err != nil && !errors.Is(err, context.Canceled) {
			d.opts.Logger.Debug("doctor: writing the report", "err", err)
		}
	})
}

// lastWindow names the window a check looked at, the way people write it
// ("last 15m", not Go's "last 15m0s").
func lastWindow(d time.Duration) string {
	return "last " + model.Duration(d.Round(time.Second)).String()
}

// clockOf returns now, or time.Now when a check was given no clock.
func clockOf(now func() time.Time) func() time.Time {
	if now == nil {
		return time.Now
	}
	return now
}

// runMemo lets the checks of one run share what they read: the trace checks
// all look at the same window of spans, which costs more to read than to
// judge.
type runMemo struct {
	mu sync.Mutex
	m  map[any]*memoEntry
}

type memoEntry struct {
	once sync.Once
	v    any
	err  error
}

type runMemoKey struct{}

func withRunMemo(ctx context.Context) context.Context {
	return context.WithValue(ctx, runMemoKey{}, &runMemo{m: map[any]*memoEntry{}})
}

// memoized returns load's result for key, loading it once per run; outside
// a run (a check called directly) it just loads.
func memoized[T any](ctx context.Context, key any, load func() (T, error)) (T, error) {
	rm, ok := ctx.Value(runMemoKey{}).(*runMemo)
	if !ok {
		return load()
	}
	rm.mu.Lock()
	e := rm.m[key]
	if e == nil {
		e = &memoEntry{}
		rm.m[key] = e
	}
	rm.mu.Unlock()
	e.once.Do(func() { e.v, e.err = load() })
	v, _ := e.v.(T)
	return v, e.err
}
