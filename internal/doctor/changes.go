package doctor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"

	"github.com/vigil-observability/vigil/internal/configcentre"
)

// ErrChangesNoEngine is returned by ChangeRegressionCheck.Run and
// StaleConfigCheck.Run when they have Metrics to query but no Engine.
var ErrChangesNoEngine = errors.New("doctor: change checks need an Engine for their Metrics")

// ChangeRegressionCheck finds a change followed by a clear RED regression
// of the service it touched (change_regression): a deploy (the service
// whose version changed) or a config write (the services whose instances
// apply the item, by vigil_config_applied_info's job), after which the
// service's error ratio or p95 latency, from the span metrics of its
// server and consumer spans, is clearly worse than in the window before.
type ChangeRegressionCheck struct {
	// Changes lists the change events between start and end (the
	// configuration centre's and the derived deploys, as /api/v1/changes
	// does).
	Changes func(ctx context.Context, start, end time.Time) ([]configcentre.Change, error)
	Metrics storage.Queryable
	Engine  promql.QueryEngine
	// Window is the time compared before and after a change (10m if 0);
	// a change is judged once at least MinAfter (2m if 0) has passed, and
	// for as long as it is within Lookback (30m if 0).
	Window, MinAfter, Lookback time.Duration
	// MinCalls is the fewest calls each window needs to be judged (20 if
	// 0).
	MinCalls float64
	Now      func() time.Time
}

// Name implements Check.
func (c ChangeRegressionCheck) Name() string { return "change regression" }

// What a regression is: the error ratio up by at least regressErrAbs and
// to at least regressErrFactor times what it was; p95 latency up by at
// least regressLatencyAbs seconds and regressLatencyFactor times.
const (
	regressErrAbs, regressErrFactor         = 0.05, 2
	regressLatencyAbs, regressLatencyFactor = 0.1, 1.5
)

// redSelector selects a service's server and consumer spans (as the SLOs do).
func redSelector(metric, service, extra string) string {
	return fmt.Sprintf(`%s{service_name=%q,span_kind=~"SPAN_KIND_SERVER|SPAN_KIND_CONSUMER"%s}`, metric, service, extra)
}

// red is one window's RED of a service.
type redWindow struct{ calls, errRatio, p95 float64 }

func (c ChangeRegressionCheck) red(ctx context.Context, service string, at time.Time, w time.Duration) (redWindow, error) {
	r := model.Duration(w).String()
	one := func(q string) (float64, error) {
		v, err := sloInstant(ctx, c.Engine, c.Metrics, q, at)
		if err != nil || len(v) == 0 {
			return math.NaN(), err
		}
		return v[0].F, nil
	}
	calls, err := one(fmt.Sprintf(`sum(increase(%s[%s]))`, redSelector("traces_span_metrics_calls_total", service, ""), r))
	if err != nil {
		return redWindow{}, err
	}
	errs, err := one(fmt.Sprintf(`sum(increase(%s[%s]))`, redSelector("traces_span_metrics_calls_total", service, `,status_code="STATUS_CODE_ERROR"`), r))
	if err != nil {
		return redWindow{}, err
	}
	if math.IsNaN(errs) {
		errs = 0
	}
	p95, err := one(fmt.Sprintf(`histogram_quantile(0.95, sum by (le) (increase(%s[%s])))`, redSelector("traces_span_metrics_duration_seconds_bucket", service, ""), r))
	if err != nil {
		return redWindow{}, err
	}
	return redWindow{calls: calls, errRatio: errs / calls, p95: p95}, nil
}

// affected names the services a change touched.
func (c ChangeRegressionCheck) affected(ctx context.Context, ch configcentre.Change, at time.Time, w time.Duration) ([]string, error) {
	if ch.Kind == configcentre.KindDeploy {
		return []string{ch.Service}, nil
	}
	v, err := sloInstant(ctx, c.Engine, c.Metrics, fmt.Sprintf(`group by (job) (last_over_time(vigil_config_applied_info{item=%q}[%s]))`,
		ch.Item, model.Duration(w)), at)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range v {
		if job := s.Metric.Get("job"); job != "" {
			out = append(out, job)
		}
	}
	slices.Sort(out)
	return out, nil
}

// changeName says what a change was, for a finding.
func changeName(ch configcentre.Change) string {
	at := ch.Time.UTC().Format(time.RFC3339)
	if ch.Kind == configcentre.KindDeploy {
		s := fmt.Sprintf("deploy of %s %s → %s", ch.Service, ch.From, ch.To)
		if ch.Instance != "" {
			s += " on " + ch.Instance
		}
		return s + " at " + at
	}
	return fmt.Sprintf("config %s of %s (version %d, by %s) at %s", ch.Action, ch.Item, ch.Version, cmp.Or(ch.Author, "unknown"), at)
}

// Run implements Check.
func (c ChangeRegressionCheck) Run(ctx context.Context) ([]Finding, error) {
	if c.Changes == nil || c.Metrics == nil {
		return nil, nil
	}
	if c.Engine == nil {
		return nil, ErrChangesNoEngine
	}
	window, minAfter := cmp.Or(c.Window, 10*time.Minute), cmp.Or(c.MinAfter, 2*time.Minute)
	lookback, minCalls := cmp.Or(c.Lookback, 30*time.Minute), cmp.Or(c.MinCalls, 20)
	now := clockOf(c.Now)()
	list, err := c.Changes(ctx, now.Add(-lookback), now.Add(-minAfter))
	if err != nil {
		return nil, err
	}
	// One finding per service and change; several deploys of one service
	// at one time (a fleet's instances) are one change.
	seen := map[string]bool{}
	var out []Finding
	for _, ch := range list {
		switch {
		case ch.Kind != configcentre.KindConfig && ch.Kind != configcentre.KindDeploy:
			continue // a kind this check cannot tie to a service
		case ch.Kind == configcentre.KindConfig && ch.Action == configcentre.OpAbort:
			continue // an abort undoes a change; it is the cure, not a suspect
		case ch.Kind == configcentre.KindConfig && ch.Action == configcentre.OpSchema:
			continue // a schema changes no instance's value
		}
		after := ch.Time.Add(window)
		if after.After(now) {
			after = now
		}
		services, err := c.affected(ctx, ch, after, window)
		if err != nil {
			return nil, err
		}
		for _, svc := range services {
			key := svc + "\x00" + ch.Kind + ch.Item + ch.From + ch.To + strconv.FormatUint(ch.Version, 10)
			if seen[key] {
				continue
			}
			seen[key] = true
			before, err := c.red(ctx, svc, ch.Time, window)
			if err != nil {
				return nil, err
			}
			aft, err := c.red(ctx, svc, after, after.Sub(ch.Time))
			if err != nil {
				return nil, err
			}
			if !(before.calls >= minCalls) || !(aft.calls >= minCalls) {
				continue
			}
			var worse []string
			if aft.errRatio-before.errRatio >= regressErrAbs && aft.errRatio >= regressErrFactor*before.errRatio {
				worse = append(worse, fmt.Sprintf("error ratio %.1f%% → %.1f%%", 100*before.errRatio, 100*aft.errRatio))
			}
			if aft.p95-before.p95 >= regressLatencyAbs && aft.p95 >= regressLatencyFactor*before.p95 {
				worse = append(worse, fmt.Sprintf("p95 latency %s → %s", fmtSeconds(before.p95), fmtSeconds(aft.p95)))
			}
			if len(worse) == 0 {
				continue
			}
			name := changeName(ch)
			fix := "Roll the deploy back (or forward with a fix) and compare the versions' traces of the failing calls."
			if ch.Kind != configcentre.KindDeploy {
				fix = fmt.Sprintf("Roll %s back (vigil config rollback) or abort its gray, then look at what the new content changed; give a gray an SLO guard so that a bad one aborts itself.", ch.Item)
			}
			out = append(out, Finding{
				Code: "change_regression", Severity: Warning, Subject: "service " + svc,
				Evidence: Evidence{
					Summary: fmt.Sprintf("%s followed by %s of service %s (%s before, %s after)",
						name, strings.Join(worse, " and "), svc, model.Duration(window), model.Duration(after.Sub(ch.Time))),
					Values: map[string]float64{
						"error_ratio_before": before.errRatio, "error_ratio_after": aft.errRatio,
						"p95_seconds_before": nanZero(before.p95), "p95_seconds_after": nanZero(aft.p95),
						"calls_before": before.calls, "calls_after": aft.calls,
					},
					Window:  fmt.Sprintf("%s before and after %s", model.Duration(window), ch.Time.UTC().Format(time.RFC3339)),
					Samples: []string{name},
				},
				Cause: "The service got clearly worse right after the change; the change is the first suspect.",
				Fix:   fix,
			})
		}
	}
	return out, nil
}

func nanZero(f float64) float64 {
	if math.IsNaN(f) {
		return 0
	}
	return f
}

func fmtSeconds(s float64) string {
	if math.IsNaN(s) {
		return "none"
	}
	return (time.Duration(s * float64(time.Second))).Round(time.Millisecond).String()
}

// ConfigItems is what StaleConfigCheck reads of the configuration centre
// (configcentre.Machine). Safe for concurrent use.
type ConfigItems interface {
	Item(k configcentre.Key) (configcentre.Item, error)
	Changes(start, end time.Time) []configcentre.Change
}

// StaleConfigCheck finds instances left on an old or aborted
// configuration version (stale_config): the SDK exports the version each
// instance applies as vigil_config_applied_info{item,version,cohort}, and
// an instance none of whose applied versions of an item is the item's
// formal version or its active gray's has not converged.
type StaleConfigCheck struct {
	Config  ConfigItems
	Metrics storage.Queryable
	Engine  promql.QueryEngine
	// Grace is how long after an item's last change its instances may
	// still be on the previous version (5m if 0).
	Grace time.Duration
	Now   func() time.Time
}

// Name implements Check.
func (c StaleConfigCheck) Name() string { return "stale config" }

// Run implements Check.
func (c StaleConfigCheck) Run(ctx context.Context) ([]Finding, error) {
	if c.Config == nil || c.Metrics == nil {
		return nil, nil
	}
	if c.Engine == nil {
		return nil, ErrChangesNoEngine
	}
	grace := cmp.Or(c.Grace, 5*time.Minute)
	now := clockOf(c.Now)()
	recent := map[string]bool{}
	for _, ch := range c.Config.Changes(now.Add(-grace), now) {
		recent[ch.Item] = true
	}
	v, err := sloInstant(ctx, c.Engine, c.Metrics, `max by (item, job, instance, version) (vigil_config_applied_info)`, now)
	if err != nil {
		return nil, err
	}
	type inst struct{ item, job, instance string }
	type applied struct{ versions []uint64 }
	byInst := map[inst]*applied{}
	for _, s := range v {
		ver, err := strconv.ParseUint(s.Metric.Get("version"), 10, 64)
		if err != nil {
			continue
		}
		k := inst{s.Metric.Get("item"), s.Metric.Get("job"), s.Metric.Get("instance")}
		a := byInst[k]
		if a == nil {
			a = &applied{}
			byInst[k] = a
		}
		a.versions = append(a.versions, ver)
	}
	type stale struct {
		inst    inst
		version uint64
		gray    bool
	}
	byItem := map[string][]stale{}
	items := map[string]configcentre.Item{}
	for k, a := range byInst {
		if recent[k.item] {
			continue
		}
		it, ok := items[k.item]
		if !ok {
			key, err := parseItemKey(k.item)
			if err != nil {
				continue
			}
			if it, err = c.Config.Item(key); err != nil {
				continue // not this centre's item (or removed): nothing to compare with
			}
			items[k.item] = it
		}
		current := func(ver uint64) bool { return ver == it.Formal || it.Gray != nil && ver == it.Gray.Version }
		if slices.ContainsFunc(a.versions, current) {
			continue
		}
		newest := slices.Max(a.versions)
		v, ok := it.VersionOf(newest)
		gray := ok && v.Gray
		byItem[k.item] = append(byItem[k.item], stale{inst: k, version: newest, gray: gray})
	}
	var out []Finding
	for _, item := range slices.Sorted(maps.Keys(byItem)) {
		st := byItem[item]
		slices.SortFunc(st, func(a, b stale) int {
			return cmp.Or(strings.Compare(a.inst.job, b.inst.job), strings.Compare(a.inst.instance, b.inst.instance))
		})
		it := items[item]
		want := fmt.Sprintf("formal version %d", it.Formal)
		if it.Gray != nil {
			want += fmt.Sprintf(" or gray version %d", it.Gray.Version)
		}
		var samples []string
		aborted := 0
		for i, s := range st {
			what := fmt.Sprintf("version %d", s.version)
			if s.gray {
				what = fmt.Sprintf("gray version %d, no longer active", s.version)
				aborted++
			}
			if i < MaxSamples {
				samples = append(samples, fmt.Sprintf("%s %s: %s", s.inst.job, s.inst.instance, what))
			}
		}
		sev := Warning
		cause := "These instances did not apply the item's current version: their watch fails (the SDK logs why), they were started with a pinned version, or they cannot parse the new content and keep the old."
		if aborted > 0 {
			sev = Critical
			cause = "Instances still run a gray version that was aborted or promoted away: an abort meant to take a harmful value out of service has not reached them. " + cause
		}
		out = append(out, Finding{
			Code: "stale_config", Severity: sev, Subject: "config " + item,
			Evidence: Evidence{
				Summary: fmt.Sprintf("%d instance(s) not on %s of %s (last change over %s ago)", len(st), want, item, model.Duration(grace)),
				Values:  map[string]float64{"stale_instances": float64(len(st)), "on_inactive_gray": float64(aborted), "formal_version": float64(it.Formal)},
				Samples: samples,
			},
			Cause: cause,
			Fix:   "Look at the instances' logs for the config watcher's errors (and at vigil_config_applied_info for what they apply); check they reach vigil's /api/v1/config with a valid token; restart an instance that stays behind.",
		})
	}
	return out, nil
}

// parseItemKey reads namespace/group/key.
func parseItemKey(s string) (configcentre.Key, error) {
	p := strings.Split(s, "/")
	if len(p) != 3 || p[0] == "" || p[1] == "" || p[2] == "" {
		return configcentre.Key{}, fmt.Errorf("item %q: want namespace/group/key", s)
	}
	return configcentre.Key{Namespace: p[0], Group: p[1], Key: p[2]}, nil
}
