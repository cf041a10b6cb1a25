package guard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	promrules "github.com/prometheus/prometheus/rules"

	"github.com/vigil-observability/vigil/internal/configcentre"
	"github.com/vigil-observability/vigil/internal/consensus"
	"github.com/vigil-observability/vigil/internal/slo"
)

// Author is the author of the aborts the guard makes.
const Author = "vigil-guard"

// AlertName is the alert raised when the guard aborts a gray.
const AlertName = "ConfigGrayAborted"

// Defaults of Options.
const (
	DefaultInterval = 15 * time.Second
	DefaultAlertFor = time.Hour
)

// Grays lists the active grays (configcentre.Machine). Safe for
// concurrent use.
type Grays interface {
	ActiveGrays() []configcentre.ActiveGray
}

// Proposer applies a command, as configapi's does: configcentre.Local on
// a single node, configcentre.Replicated in a cluster.
type Proposer interface {
	Propose(ctx context.Context, c configcentre.Command) (configcentre.Result, error)
}

// Options configure an Evaluator.
type Options struct {
	Grays    Grays    // required
	Proposer Proposer // required
	// Query evaluates an instant query (rules.EngineQueryFunc over the
	// server's engine and metric store); required.
	Query promrules.QueryFunc
	// SLOs are the current slos: (they change on a reload); nil, none.
	SLOs func() []slo.Spec
	// Notify receives the ConfigGrayAborted alert (the Alertmanager's
	// Notify, as the rules' alerts); nil, no alert.
	Notify promrules.NotifyFunc
	// AlertFor is how long that alert fires before it resolves; 0,
	// DefaultAlertFor.
	AlertFor time.Duration
	// Interval between evaluations; 0, DefaultInterval.
	Interval time.Duration
	// Leading says whether this node evaluates: in a cluster, while it
	// leads. Nil: always (a single node).
	Leading func() bool
	// Now is the clock; nil, time.Now.
	Now func() time.Time
	// Logger: nil, discarded.
	Logger *slog.Logger
	// Registerer receives vigil_config_guard_evaluations_total{result}
	// and vigil_config_guard_aborts_total{result}; nil, none.
	Registerer prometheus.Registerer
}

// Evaluator evaluates the guard of every active gray every interval and
// aborts the grays whose guard is breached.
type Evaluator struct {
	opts        Options
	evaluations *prometheus.CounterVec
	aborts      *prometheus.CounterVec

	mu sync.Mutex
	// failing is each gray's last evaluation error (by item and gray
	// version), so that a guard failing alike at every interval is
	// logged once, not every few seconds for as long as the gray lasts.
	failing map[string]string
}

// New returns an Evaluator. It panics if a required option is missing.
func New(opts Options) *Evaluator {
	if opts.Grays == nil || opts.Proposer == nil || opts.Query == nil {
		panic("guard: Grays, Proposer and Query are required")
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.AlertFor <= 0 {
		opts.AlertFor = DefaultAlertFor
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Evaluator{
		opts: opts, failing: map[string]string{},
		evaluations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_config_guard_evaluations_total",
			Help: "Evaluations of gray rollouts' guards, by result: pass, breach, or error (the guard could not be evaluated; the gray is left alone).",
		}, []string{"result"}),
		aborts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_config_guard_aborts_total",
			Help: "Gray rollouts the guard aborted (result ok), or tried to and could not (failed; tried again at the next evaluation).",
		}, []string{"result"}),
	}
	for _, r := range []string{"pass", "breach", "error"} {
		e.evaluations.WithLabelValues(r)
	}
	for _, r := range []string{"ok", "failed"} {
		e.aborts.WithLabelValues(r)
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(e.evaluations, e.aborts)
	}
	return e
}

// Run evaluates every Interval until ctx ends.
func (e *Evaluator) Run(ctx context.Context) error {
	t := time.NewTicker(e.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			e.Evaluate(ctx)
		}
	}
}

// Evaluate evaluates every active gray's guard once (on a node that
// leads) and aborts those breached.
func (e *Evaluator) Evaluate(ctx context.Context) {
	if e.opts.Leading != nil && !e.opts.Leading() {
		return
	}
	var specs []slo.Spec
	if e.opts.SLOs != nil {
		specs = e.opts.SLOs()
	}
	grays := e.opts.Grays.ActiveGrays()
	active := make(map[string]bool, len(grays))
	for _, ag := range grays {
		active[grayID(ag)] = true
	}
	e.mu.Lock()
	for id := range e.failing {
		if !active[id] {
			delete(e.failing, id)
		}
	}
	e.mu.Unlock()
	for _, ag := range grays {
		if ctx.Err() != nil {
			return
		}
		e.evaluate(ctx, ag, specs)
	}
}

func grayID(ag configcentre.ActiveGray) string {
	return ag.Item.String() + "@" + strconv.FormatUint(ag.Gray.Version, 10)
}

// failed notes err as the gray's last evaluation error and reports
// whether it differs from the one before.
func (e *Evaluator) failed(ag configcentre.ActiveGray, err error) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	id, msg := grayID(ag), ""
	if err != nil {
		msg = err.Error()
	}
	changed := e.failing[id] != msg
	if msg == "" {
		delete(e.failing, id)
	} else {
		e.failing[id] = msg
	}
	return changed
}

func (e *Evaluator) evaluate(ctx context.Context, ag configcentre.ActiveGray, specs []slo.Spec) {
	g, ok, err := Parse(ag.Gray.Guard)
	if !ok && err == nil {
		return // an unguarded gray
	}
	log := e.opts.Logger.With("item", ag.Item.String(), "gray_version", ag.Gray.Version)
	var expr, judges string
	if err == nil {
		expr, judges, err = g.Expr(specs)
	}
	now := e.opts.Now()
	var v promql.Vector
	if err == nil {
		v, err = e.opts.Query(ctx, expr, now)
	}
	if err != nil {
		// Never abort on a guard that cannot be judged (an SLO removed by
		// a reload, a query refused): a person looks at the log.
		e.evaluations.WithLabelValues("error").Inc()
		if e.failed(ag, err) {
			log.Warn("gray guard could not be evaluated; the gray is left as it is (logged again when the error changes)", "guard", string(ag.Gray.Guard), "err", err)
		}
		return
	}
	if e.failed(ag, nil) {
		log.Info("gray guard evaluated again")
	}
	if len(v) == 0 {
		e.evaluations.WithLabelValues("pass").Inc()
		return
	}
	e.evaluations.WithLabelValues("breach").Inc()
	value := v[0].F
	reason := fmt.Sprintf("guard %s breached at %s: %s holds, value %s",
		g, now.UTC().Format(time.RFC3339), judges, strconv.FormatFloat(value, 'g', 6, 64))
	if !v[0].Metric.IsEmpty() {
		reason += " " + v[0].Metric.String()
	}
	_, err = e.opts.Proposer.Propose(ctx, configcentre.Command{
		Op: configcentre.OpAbort, Item: ag.Item, Version: ag.Gray.Version,
		Author: Author, Message: reason, Time: now.UTC(),
	})
	switch {
	case errors.Is(err, configcentre.ErrNotFound):
		// Promoted or aborted since it was listed: nothing to do.
		log.Info("gray guard breached, but the gray had already ended", "err", err)
		return
	case errors.Is(err, consensus.ErrNotLeader):
		// Leadership moved since the round began: the new leader judges
		// the gray now.
		log.Info("gray guard breached, but this node no longer leads; the leader's guard decides", "err", err)
		return
	case err != nil:
		e.aborts.WithLabelValues("failed").Inc()
		log.Error("gray guard breached, but aborting the gray failed; trying again at the next evaluation", "reason", reason, "err", err)
		return
	}
	e.aborts.WithLabelValues("ok").Inc()
	log.Warn("gray aborted by its guard", "reason", reason)
	if e.opts.Notify != nil {
		e.opts.Notify(ctx, expr, &promrules.Alert{
			State: promrules.StateFiring,
			Labels: labels.FromStrings(
				labels.AlertName, AlertName,
				"namespace", ag.Item.Namespace, "group", ag.Item.Group, "key", ag.Item.Key,
				"version", strconv.FormatUint(ag.Gray.Version, 10),
			),
			Annotations: labels.FromStrings(
				"summary", fmt.Sprintf("The gray rollout of %s (version %d) was aborted by its guard.", ag.Item, ag.Gray.Version),
				"description", reason,
			),
			ActiveAt: now, FiredAt: now, LastSentAt: now, ValidUntil: now.Add(e.opts.AlertFor),
		})
	}
}
