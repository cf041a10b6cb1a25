package alerting

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/alertmanager/inhibit"
	"github.com/prometheus/alertmanager/marker"
	"github.com/prometheus/alertmanager/silence"
	"github.com/prometheus/alertmanager/silence/silencepb"
	"github.com/prometheus/common/model"
)

// SuppressedAlert is a firing alert that notifies nobody because silences
// or an inhibition cover it.
type SuppressedAlert struct {
	Labels   model.LabelSet
	StartsAt time.Time
	// Since is when the suppression began: the later of the alert's start
	// and the start of the earliest covering silence or inhibiting alert.
	Since time.Time
	// Silences cover the alert; Inhibitors inhibit it.
	Silences   []Silence
	Inhibitors []Inhibitor
}

// Silence is an active silence, as the silences page and amtool show it.
type Silence struct {
	ID        string
	CreatedBy string
	Comment   string
	// Matchers are written as in amtool: {alertname="DiskFull"}.
	Matchers         string
	StartsAt, EndsAt time.Time
}

// Inhibitor is a firing alert that inhibits another.
type Inhibitor struct {
	Fingerprint string
	// Labels are empty when the alert has gone since.
	Labels   model.LabelSet
	StartsAt time.Time
	// Suppressed is true when the inhibiting alert is silenced or inhibited
	// itself: then nobody hears of either alert.
	Suppressed bool
	// Rules are the inhibit_rules that match the pair: their name, or how
	// they are written when they have none.
	Rules []string
}

// Suppressed returns the firing alerts that silences or inhibit rules
// currently mute, as the API predicts their status: with a fresh marker
// per alert, so nothing leaks between aggregation groups.
func (am *Alertmanager) Suppressed(ctx context.Context) ([]SuppressedAlert, error) {
	firing, err := am.firing()
	if err != nil {
		return nil, err
	}
	byFP := make(map[string]*alert.Alert, len(firing))
	for _, a := range firing {
		byFP[a.Fingerprint().String()] = a
	}
	am.mtx.Lock()
	conf := am.conf
	am.mtx.Unlock()
	var rules []*inhibit.InhibitRule
	if conf != nil {
		for _, r := range conf.InhibitRules {
			rules = append(rules, inhibit.NewInhibitRule(r))
		}
	}

	var out []SuppressedAlert
	for _, a := range firing {
		st := am.status(ctx, a.Labels)
		if st.State != alert.AlertStateSuppressed {
			continue
		}
		s := SuppressedAlert{Labels: a.Labels, StartsAt: a.StartsAt}
		var covered []time.Time // when each silence or inhibitor began
		if len(st.SilencedBy) > 0 {
			sils, _, err := am.silences.Query(ctx, silence.QIDs(st.SilencedBy...))
			if err != nil {
				return nil, fmt.Errorf("alerting: silences of %s: %w", a.Labels, err)
			}
			for _, sil := range sils {
				s.Silences = append(s.Silences, silenceOf(sil))
				covered = append(covered, sil.StartsAt.AsTime())
			}
		}
		for _, fp := range st.InhibitedBy {
			in := Inhibitor{Fingerprint: fp}
			src := byFP[fp]
			if src == nil {
				if f, err := model.ParseFingerprint(fp); err == nil {
					src, _ = am.alerts.Get(f)
				}
			}
			if src != nil {
				in.Labels = src.Labels
				in.StartsAt = src.StartsAt
				in.Suppressed = am.status(ctx, src.Labels).State == alert.AlertStateSuppressed
				in.Rules = matchingRules(rules, src.Labels, a.Labels)
				covered = append(covered, src.StartsAt)
			}
			s.Inhibitors = append(s.Inhibitors, in)
		}
		s.Since = a.StartsAt
		if len(covered) > 0 {
			if first := slices.MinFunc(covered, time.Time.Compare); first.After(s.Since) {
				s.Since = first
			}
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(x, y SuppressedAlert) int {
		return cmp.Or(x.Since.Compare(y.Since), cmp.Compare(x.Labels.String(), y.Labels.String()))
	})
	return out, nil
}

// firing lists the alerts in the store that have not resolved.
func (am *Alertmanager) firing() ([]*alert.Alert, error) {
	it := am.alerts.GetPending()
	defer it.Close()
	var out []*alert.Alert
	for pa := range it.Next() {
		if pa != nil && pa.Data != nil && !pa.Data.Resolved() {
			out = append(out, pa.Data)
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("alerting: list alerts: %w", err)
	}
	return out, nil
}

// status predicts an alert's status now, as the v2 API does.
func (am *Alertmanager) status(ctx context.Context, lset model.LabelSet) alert.AlertStatus {
	m := marker.NewAlertMarker()
	am.setAlertStatus(marker.WithContext(ctx, m), lset)
	return m.Status(lset.Fingerprint())
}

var matcherOps = map[silencepb.Matcher_Type]string{
	silencepb.Matcher_EQUAL: "=", silencepb.Matcher_NOT_EQUAL: "!=",
	silencepb.Matcher_REGEXP: "=~", silencepb.Matcher_NOT_REGEXP: "!~",
}

func silenceOf(sil *silencepb.Silence) Silence {
	// A silence matches if any of its matcher sets does; older silences
	// have a single list of matchers instead.
	sets := [][]*silencepb.Matcher{sil.Matchers}
	if len(sil.MatcherSets) > 0 {
		sets = sets[:0]
		for _, ms := range sil.MatcherSets {
			sets = append(sets, ms.Matchers)
		}
	}
	written := make([]string, 0, len(sets))
	for _, set := range sets {
		ms := make([]string, 0, len(set))
		for _, m := range set {
			ms = append(ms, fmt.Sprintf("%s%s%q", m.Name, matcherOps[m.Type], m.Pattern))
		}
		written = append(written, "{"+strings.Join(ms, ", ")+"}")
	}
	return Silence{
		ID: sil.Id, CreatedBy: sil.CreatedBy, Comment: sil.Comment,
		Matchers: strings.Join(written, " or "),
		StartsAt: sil.StartsAt.AsTime(), EndsAt: sil.EndsAt.AsTime(),
	}
}

// matchingRules names the inhibit rules under which source inhibits target.
func matchingRules(rules []*inhibit.InhibitRule, source, target model.LabelSet) []string {
	var out []string
	for _, r := range rules {
		if !r.SourceMatchers.Matches(source) || !r.TargetMatchers.Matches(target) {
			continue
		}
		equal := make([]string, 0, len(r.Equal))
		ok := true
		for n := range r.Equal {
			equal = append(equal, string(n))
			ok = ok && source[n] == target[n]
		}
		if !ok {
			continue
		}
		if r.Name != "" {
			out = append(out, r.Name)
			continue
		}
		slices.Sort(equal)
		out = append(out, fmt.Sprintf("source_matchers: %s, target_matchers: %s, equal: [%s]",
			r.SourceMatchers, r.TargetMatchers, strings.Join(equal, ", ")))
	}
	return out
}
