package doctor

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/vigil-observability/vigil/internal/alerting"
)

// Suppressions lists the firing alerts that silences or inhibit rules
// mute; *alerting.Alertmanager satisfies it.
type Suppressions interface {
	Suppressed(ctx context.Context) ([]alerting.SuppressedAlert, error)
}

// SuppressionCheck finds firing alerts that have notified nobody for
// longer than a threshold because a silence or an inhibition covers them
// (alert_suppressed): a maintenance silence that outlived the maintenance,
// or an inhibiting alert that fires for hours.
type SuppressionCheck struct {
	Alerts Suppressions
	// Threshold is how long an alert may stay suppressed before it is
	// reported (1h if 0).
	Threshold time.Duration
	Now       func() time.Time
}

// Name implements Check.
func (c SuppressionCheck) Name() string { return "suppressed" }

// NodeLocal implements NodeLocal: it judges this node's Alertmanager.
func (c SuppressionCheck) NodeLocal() bool { return true }

// Run implements Check.
func (c SuppressionCheck) Run(ctx context.Context) ([]Finding, error) {
	threshold := cmp.Or(c.Threshold, time.Hour)
	now := clockOf(c.Now)
	t := now()
	all, err := c.Alerts.Suppressed(ctx)
	if err != nil {
		return nil, fmt.Errorf("doctor: suppressed alerts: %w", err)
	}
	subjects := alertSubjects(all)
	var out []Finding
	for i, a := range all {
		muted := t.Sub(a.Since)
		if muted < threshold {
			continue
		}
		if len(a.Silences) > 0 {
			out = append(out, silencedFinding(a, subjects[i], t, muted))
		} else {
			out = append(out, inhibitedFinding(a, subjects[i], t, muted))
		}
	}
	return out, nil
}

func silencedFinding(a alerting.SuppressedAlert, subject string, now time.Time, muted time.Duration) Finding {
	var by, ids, samples []string
	ends := a.Silences[0].EndsAt
	for _, s := range a.Silences {
		who := s.CreatedBy
		if who == "" {
			who = "unknown"
		}
		desc := fmt.Sprintf("silence %s (by %s", s.ID, who)
		if s.Comment != "" {
			desc += fmt.Sprintf(": %q", s.Comment)
		}
		by = append(by, desc+fmt.Sprintf(", until %s)", s.EndsAt.UTC().Format(time.RFC3339)))
		ids = append(ids, s.ID)
		samples = append(samples, "silence "+s.ID+" "+s.Matchers)
		if s.EndsAt.After(ends) {
			ends = s.EndsAt
		}
	}
	samples = append([]string{a.Labels.String()}, samples...)
	f := Finding{
		Code: "alert_suppressed", Severity: Warning, Subject: subject,
		Evidence: Evidence{
			Summary: fmt.Sprintf("firing since %s and silenced for %s by %s", a.StartsAt.UTC().Format(time.RFC3339), shortDuration(muted), strings.Join(by, ", ")),
			Values: map[string]float64{
				"suppressed_seconds": muted.Seconds(), "firing_seconds": now.Sub(a.StartsAt).Seconds(),
				"silence_ends_in_seconds": ends.Sub(now).Seconds(),
			},
			Window:  "since " + a.Since.UTC().Format(time.RFC3339),
			Samples: samples,
		},
		Cause: "a silence matches this alert, so it notifies nobody; a silence kept after its maintenance, or with matchers broader than meant, hides a real problem",
		Fix: fmt.Sprintf("if the silence is no longer needed, expire it: amtool silence expire %s --alertmanager.url=<vigil's URL>, "+
			"curl -X DELETE <vigil's URL>/api/v2/silence/%s, or the Silences page; if it is, narrow its matchers to the alerts it is meant for",
			strings.Join(ids, " "), ids[0]),
	}
	if len(a.Inhibitors) > 0 {
		f.Evidence.Summary += "; it is inhibited as well"
	}
	return f
}

func inhibitedFinding(a alerting.SuppressedAlert, subject string, now time.Time, muted time.Duration) Finding {
	f := Finding{
		Code: "alert_suppressed", Severity: Info, Subject: subject,
		Evidence: Evidence{
			Values: map[string]float64{"suppressed_seconds": muted.Seconds(), "firing_seconds": now.Sub(a.StartsAt).Seconds()},
			Window: "since " + a.Since.UTC().Format(time.RFC3339),
		},
	}
	var names, rules []string
	var silent bool
	for _, in := range a.Inhibitors {
		if len(in.Labels) == 0 {
			names = append(names, "an alert that has resolved since ("+in.Fingerprint+")")
			continue
		}
		names = append(names, fmt.Sprintf("%s (firing since %s)", in.Labels, in.StartsAt.UTC().Format(time.RFC3339)))
		silent = silent || in.Suppressed
		for _, r := range in.Rules {
			if !slices.Contains(rules, r) {
				rules = append(rules, r)
			}
		}
	}
	f.Evidence.Summary = fmt.Sprintf("firing since %s and inhibited for %s by %s", a.StartsAt.UTC().Format(time.RFC3339), shortDuration(muted), strings.Join(names, ", "))
	f.Evidence.Samples = append([]string{a.Labels.String()}, rules...)
	rule := "the inhibit rule"
	if len(rules) > 0 {
		rule = "the inhibit rule " + rules[0]
	}
	inhibitor := "the inhibiting alert"
	if len(a.Inhibitors) > 0 && len(a.Inhibitors[0].Labels) > 0 {
		inhibitor = string(a.Inhibitors[0].Labels[model.AlertNameLabel])
	}
	if silent {
		f.Severity = Warning
		f.Cause = "the alert that inhibits it is itself silenced or inhibited, so nobody is notified of either"
		f.Fix = fmt.Sprintf("expire or narrow what mutes %s (its own alert_suppressed finding names it), or, if the two alerts are unrelated, "+
			"narrow %s in alertmanager.yml's inhibit_rules (its equal labels or target_matchers)", inhibitor, rule)
		return f
	}
	f.Cause = fmt.Sprintf("%s works as designed, but %s has been firing all this time and keeps this alert hidden while it fires", rule, inhibitor)
	f.Fix = fmt.Sprintf("resolve %s, which is notified; if this alert has a cause of its own, narrow %s in alertmanager.yml's inhibit_rules (its equal labels or target_matchers)", inhibitor, rule)
	return f
}

// shortDuration drops sub-second noise from a duration shown to people.
func shortDuration(d time.Duration) time.Duration {
	if d > time.Hour {
		return d.Round(time.Minute)
	}
	return d.Round(time.Second)
}

// maxSubjectLabels bounds the labels a subject shows besides the alert name.
const maxSubjectLabels = 3

// preferredLabels identify an alert when no label tells it from others of
// the same name.
var preferredLabels = []model.LabelName{"service", "job", "instance", "namespace", "pod"}

// alertSubjects names each alert by its alertname and the labels that tell
// it from the other listed alerts of that name (or, when it is the only
// one, the labels that usually identify an alert): short enough for a
// series label, distinct enough to act on.
func alertSubjects(as []alerting.SuppressedAlert) []string {
	byName := map[model.LabelValue][]model.LabelSet{}
	for _, a := range as {
		n := a.Labels[model.AlertNameLabel]
		byName[n] = append(byName[n], a.Labels)
	}
	out := make([]string, len(as))
	for i, a := range as {
		name := a.Labels[model.AlertNameLabel]
		peers := byName[name]
		var keys []model.LabelName
		if len(peers) > 1 {
			for k := range a.Labels {
				if k == model.AlertNameLabel {
					continue
				}
				for _, p := range peers {
					if p[k] != a.Labels[k] {
						keys = append(keys, k)
						break
					}
				}
			}
			slices.SortFunc(keys, func(x, y model.LabelName) int {
				return cmp.Or(cmp.Compare(labelPreference(x), labelPreference(y)), cmp.Compare(x, y))
			})
		} else {
			for _, k := range preferredLabels {
				if a.Labels[k] != "" {
					keys = append(keys, k)
				}
			}
		}
		keys = keys[:min(len(keys), maxSubjectLabels)]
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			v := string(a.Labels[k])
			if len(v) > 40 {
				v = v[:40] + "…"
			}
			parts = append(parts, fmt.Sprintf("%s=%q", k, v))
		}
		out[i] = string(name)
		if len(parts) > 0 {
			out[i] += "{" + strings.Join(parts, ", ") + "}"
		}
	}
	return out
}

func labelPreference(k model.LabelName) int {
	if i := slices.Index(preferredLabels, k); i >= 0 {
		return i
	}
	return len(preferredLabels)
}

// Deliveries tells how receivers delivered notifications;
// *alerting.Alertmanager satisfies it.
type Deliveries interface {
	DeliveryStatus(since time.Time) []alerting.DeliveryStatus
}

// NotifyCheck finds receivers that fail to deliver notifications and
// notification templates that fail to render (notify_failures): the alert
// fires, routes, and still reaches nobody, or reaches them in the
// fallback form.
type NotifyCheck struct {
	Deliveries Deliveries
	// Window is the time looked at (1h if 0).
	Window time.Duration
	Now    func() time.Time
}

// Name implements Check.
func (c NotifyCheck) Name() string { return "notify" }

// NodeLocal implements NodeLocal: it judges what this node's Alertmanager
// sent.
func (c NotifyCheck) NodeLocal() bool { return true }

// Run implements Check.
func (c NotifyCheck) Run(context.Context) ([]Finding, error) {
	window := cmp.Or(c.Window, time.Hour)
	now := clockOf(c.Now)
	var out []Finding
	for _, s := range c.Deliveries.DeliveryStatus(now().Add(-window)) {
		if s.Failures > 0 {
			out = append(out, deliveryFailed(s, window))
		}
		if s.TemplateErrors == 0 {
			continue
		}
		for _, p := range s.LastTemplateProblems {
			summary := fmt.Sprintf("%d notifications were sent in a fallback form because a template failed; the last time %s failed: %s",
				s.TemplateErrors, p.Field, p.Err)
			f := templateFinding(p, summary)
			f.Evidence.Values = map[string]float64{"template_errors": float64(s.TemplateErrors)}
			f.Evidence.Window = lastWindow(window)
			out = append(out, f)
		}
	}
	return out, nil
}

func deliveryFailed(s alerting.DeliveryStatus, window time.Duration) Finding {
	sev := Warning
	if s.Failures == s.Attempts {
		sev = Critical
	}
	cause, fix := deliveryCause(s)
	return Finding{
		Code: "notify_failures", Severity: sev, Subject: s.Receiver + "/" + s.Integration,
		Evidence: Evidence{
			Summary: fmt.Sprintf("%d of %d delivery attempts failed (%s); the last at %s: %s",
				s.Failures, s.Attempts, s.Class, s.LastFailure.UTC().Format(time.RFC3339), s.LastError),
			Values: map[string]float64{"attempts": float64(s.Attempts), "failures": float64(s.Failures), "ratio": float64(s.Failures) / float64(s.Attempts)},
			Window: lastWindow(window),
		},
		Cause: cause,
		Fix:   fix,
	}
}

// amConfigPath turns an integration's name (webhook[0]) into where it is in
// alertmanager.yml (webhook_configs[0]).
func amConfigPath(integration string) string {
	name, idx, ok := strings.Cut(integration, "[")
	if !ok {
		return integration
	}
	return name + "_configs[" + idx
}

// deliveryCause explains a delivery failure by its class.
func deliveryCause(s alerting.DeliveryStatus) (cause, fix string) {
	where := fmt.Sprintf("receiver %q's %s in alertmanager.yml", s.Receiver, amConfigPath(s.Integration))
	switch s.Class {
	case alerting.ClassRefused:
		return "nothing listens at the address the integration posts to: the endpoint is down, or the URL's host or port is wrong",
			"check the URL of " + where + " and that the endpoint is up and reachable from vigil's host (post to it with curl from there)"
	case alerting.ClassDNS:
		return "the host name in the integration's URL does not resolve from vigil's host",
			"fix the host name in the URL of " + where + ", or its DNS record"
	case alerting.ClassTimeout:
		return "the endpoint did not answer in time: a firewall dropping packets, a proxy in the way, or a slow receiver",
			"check that vigil's host can reach the endpoint (firewall, or set http_config.proxy_url in " + where + "); if the receiver is just slow, raise the integration's timeout"
	case alerting.ClassTLS:
		return "the TLS handshake with the endpoint failed: its certificate is not trusted by vigil, has expired, or is for another name",
			"fix the endpoint's certificate chain, or set http_config.tls_config.ca_file (a private CA) or server_name in " + where
	case alerting.ClassOutbound:
		return "vigil refused to connect: the integration's URL leads to a link-local or cloud metadata address (" + s.LastError + ")",
			"point the URL of " + where + " at the real endpoint; if that address is really meant, allow its range in vigil.yaml under alerting.allow_outbound"
	case "http 401", "http 403":
		return "the endpoint rejects vigil's credentials (" + s.Class + "): the token, API key or secret URL is wrong, expired or revoked",
			"renew the credential in " + where + ": http_config.authorization or basic_auth for a webhook, api_url for Slack (a revoked incoming webhook), routing_key for PagerDuty, api_key for Opsgenie"
	case "http 404":
		return "the endpoint has nothing at the URL's path (http 404)",
			"check the path of the URL in " + where
	case "http 429":
		return "the endpoint rate-limits vigil (http 429): too many notifications",
			"send fewer notifications: group more alerts together (route group_by) and raise group_interval and repeat_interval"
	}
	if strings.HasPrefix(s.Class, "http 4") {
		return "the endpoint rejects the request (" + s.Class + "), usually a payload it does not expect or a wrong path",
			"read the endpoint's answer in the error above; check the URL and, for a custom payload, its fields in " + where
	}
	if strings.HasPrefix(s.Class, "http 5") {
		return "the endpoint fails on its side (" + s.Class + ")",
			"look at the receiving service's logs; Alertmanager retries each notification until group_interval ends, then drops it"
	}
	return "the integration failed to deliver: " + s.LastError,
		"read the error above and vigil's log (component=alertmanager) for " + where
}

// templateFinding reports a templated field that fails to render.
func templateFinding(p alerting.TemplateProblem, summary string) Finding {
	if p.Receiver == "" {
		return Finding{
			Code: "notify_failures", Severity: Critical, Subject: p.Field,
			Evidence: Evidence{Summary: summary},
			Cause:    "the notification template files of alertmanager.yml do not parse, so vigil refuses to load the configuration",
			Fix:      "fix the template file named in the error (alertmanager.yml's templates: list), then reload",
		}
	}
	return Finding{
		Code: "notify_failures", Severity: Warning, Subject: p.Receiver + "/" + p.Field,
		Evidence: Evidence{Summary: summary},
		Cause: "the template of " + p.Field + " fails to render (an undefined template or function, or a syntax error), so vigil sends " +
			p.Fallback + " in its place",
		Fix: fmt.Sprintf("fix %s under receiver %q in alertmanager.yml (or the template file that defines what it calls); "+
			"`vigil doctor --offline --config vigil.yaml` renders every receiver's templates against a sample alert", p.Field, p.Receiver),
	}
}

// TemplateCheck reports the notification templates that fail to render
// against a sample alert (notify_failures), without a running
// Alertmanager: for `vigil doctor --offline`.
type TemplateCheck struct {
	// Problems renders the templates, as alerting.CheckTemplates does for
	// a config file.
	Problems func() ([]alerting.TemplateProblem, error)
}

// Name implements Check.
func (c TemplateCheck) Name() string { return "templates" }

// Run implements Check.
func (c TemplateCheck) Run(context.Context) ([]Finding, error) {
	ps, err := c.Problems()
	if err != nil {
		return nil, fmt.Errorf("doctor: notification templates: %w", err)
	}
	out := make([]Finding, 0, len(ps))
	for _, p := range ps {
		summary := "the template of " + p.Field + " fails to render against a sample alert: " + p.Err
		if p.Receiver == "" {
			summary = "the template files fail to parse: " + p.Err
		}
		out = append(out, templateFinding(p, summary))
	}
	return out, nil
}
